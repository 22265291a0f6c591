// Where the cluster's etcd is and how to log in to it: the `etcd:` block of
// the agent's configuration (parsed by plugin/config/etcd_block.cpp), which
// secretshimctl's cluster commands read as well.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/cluster/etcd_client.hpp"

namespace secretshim::cluster {

// Paths are absolute.
struct EtcdConfig {
    std::vector<std::string> endpoints;  // https://HOST:PORT
    std::string ca, cert, key;
    std::string node;        // this node's name (the agent)
    std::string clusterKey;  // the admins' cluster key (secretshimctl)
    std::string signingKey;  // the admin's Ed25519 private key (secretshimctl)
    // The admin public keys whose signatures a node accepts (required with
    // source: etcd; the admin CLI also trusts them for node registrations).
    std::vector<std::string> adminKeys;

    bool operator==(const EtcdConfig&) const = default;
};

// The etcd client `config` describes (the agent's and the CLI's): refuses a
// client key others may read; does not connect yet.
Result<std::unique_ptr<EtcdClient>> etcdClientFor(const EtcdConfig& config);

}  // namespace secretshim::cluster
