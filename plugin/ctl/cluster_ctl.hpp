// secretshimctl's cluster commands (docs/cluster.md): the options that
// reach etcd, and `node`, `secret create/ls/inspect/rm/rotate`, `task
// assign/unassign/ls` against the cluster. With no etcd settings the
// secret commands talk to the local agent as before.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace secretshim::plugin {

class ClusterCli {
public:
    ClusterCli(CLI::App& app, CLI::App& secret, CLI::App& task);
    // Whether this invocation is for the cluster (etcd settings given, or a
    // cluster-only command).
    bool selected() const;
    int run();

private:
    std::string config_, caFile_, certFile_, keyFile_, user_, passwordFile_, clusterKey_;
    std::string signingKey_;
    std::vector<std::string> endpoints_;
    std::string name_, node_, source_ = "-", format_ = "table", publicKey_, keyOut_, stateDir_;
    std::vector<std::string> specs_;
    int signal_ = 0;
    std::string identity_;
    std::uint32_t maxContainers_ = 1;
    CLI::App* nodeCmd_ = nullptr;
    CLI::App* nodeAdd_ = nullptr;
    CLI::App* nodeLs_ = nullptr;
    CLI::App* nodeKeygen_ = nullptr;
    CLI::App* secret_ = nullptr;
    CLI::App* create_ = nullptr;
    CLI::App* rotate_ = nullptr;
    CLI::App* assign_ = nullptr;
    CLI::App* unassign_ = nullptr;
    CLI::App* tasks_ = nullptr;
};

}  // namespace secretshim::plugin
