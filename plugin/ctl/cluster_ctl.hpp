// secretshimctl's cluster commands (docs/cluster.md): the options that
// reach etcd, and `node`, `service`, `secret create/ls/inspect/rm/rotate`,
// `task assign/unassign/place/ls` against the cluster. With no etcd settings the
// secret commands talk to the local agent as before.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"

namespace secretshim::cluster {
class ClusterAdmin;
struct EtcdConfig;
struct TaskAssignment;
}  // namespace secretshim::cluster

namespace secretshim::plugin {

class ClusterCli {
public:
    ClusterCli(CLI::App& app, CLI::App& secret, CLI::App& task);
    // Whether this invocation is for the cluster (etcd settings given, or a
    // cluster-only command).
    bool selected() const;
    int run();

private:
    // The steps of run(): the settings, the connection, then one command.
    Result<cluster::EtcdConfig> etcdConfig() const;
    Result<std::unique_ptr<cluster::ClusterAdmin>> connect(const cluster::EtcdConfig& c) const;
    void addGrantOptions(CLI::App* command);  // --secret, --identity, --max-containers, --signal
    Result<cluster::TaskAssignment> grants() const;  // what they say
    int keygen();
    int addNode(cluster::ClusterAdmin& admin, const cluster::EtcdConfig& c);
    int listNodes(cluster::ClusterAdmin& admin);
    int createSecret(cluster::ClusterAdmin& admin, CLI::App* create);
    int rotateSecret(cluster::ClusterAdmin& admin);
    int listSecrets(cluster::ClusterAdmin& admin, CLI::App* ls, CLI::App* inspect);
    int assignTask(cluster::ClusterAdmin& admin);
    int unassignTask(cluster::ClusterAdmin& admin);
    int listTasks(cluster::ClusterAdmin& admin);
    int services(cluster::ClusterAdmin& admin);  // service create/update/rm/ls, task place

    std::string config_, caFile_, certFile_, keyFile_, clusterKey_;
    std::string signingKey_;
    std::vector<std::string> endpoints_;
    std::string name_, node_, service_, source_ = "-", format_ = "table", publicKey_, keyOut_, stateDir_;
    bool replace_ = false, rotateKey_ = false, promoteKey_ = false;
    std::vector<std::string> specs_;
    int signal_ = 0;
    std::string identity_;
    std::uint32_t maxContainers_ = 1;
    CLI::App* nodeCmd_ = nullptr;
    CLI::App* nodeAdd_ = nullptr;
    CLI::App* nodeLs_ = nullptr;
    CLI::App* nodeRm_ = nullptr;
    CLI::App* rekey_ = nullptr;
    CLI::App* nodeKeygen_ = nullptr;
    CLI::App* secret_ = nullptr;
    CLI::App* create_ = nullptr;
    CLI::App* rotate_ = nullptr;
    CLI::App* assign_ = nullptr;
    CLI::App* unassign_ = nullptr;
    CLI::App* tasks_ = nullptr;
    CLI::App* place_ = nullptr;
    CLI::App* serviceCmd_ = nullptr;
    CLI::App* serviceCreate_ = nullptr;
    CLI::App* serviceUpdate_ = nullptr;
    CLI::App* serviceRm_ = nullptr;
    CLI::App* serviceLs_ = nullptr;
};

}  // namespace secretshim::plugin
