// secretshimctl's cluster side: the admin's operations on the etcd data
// model (docs/cluster.md). Every write is a transaction that is safe to
// repeat: a request that timed out may still have landed, so a retry that
// finds its own write in place counts as success.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/error.hpp"
#include "plugin/cluster/envelope.hpp"
#include "plugin/cluster/etcd_client.hpp"

namespace secretshim::plugin {

class ClusterAdmin {
public:
    ClusterAdmin(std::unique_ptr<cluster::EtcdClient> client, std::optional<cluster::ClusterKey> key)
        : client_(std::move(client)), key_(std::move(key)) {}

    // Registers (or confirms) a node's X25519 public key.
    Result<void> addNode(const std::string& node, const cluster::PublicKey& publicKey);
    Result<nlohmann::json> listNodes();
    Result<std::string> createSecret(const std::string& name, const SecureBuffer& value);  // the id
    Result<std::uint64_t> rotateSecret(const std::string& name, const SecureBuffer& value);  // the new version
    Result<nlohmann::json> listSecrets(const std::string& only = {});
    Result<void> removeSecret(const std::string& name);
    Result<void> assignTask(const std::string& task, const std::string& node, const std::string& specs, int signal);
    Result<std::string> unassignTask(const std::string& task);  // the node it was on
    Result<nlohmann::json> listTasks();

private:
    struct Assignment {
        std::string node;
        std::string task;
        std::string secrets;  // the specs
        std::vector<std::string> sources;
    };
    Result<std::vector<Assignment>> assignments();
    Result<const cluster::ClusterKey*> clusterKey();

    std::unique_ptr<cluster::EtcdClient> client_;
    std::optional<cluster::ClusterKey> key_;
};

}  // namespace secretshim::plugin
