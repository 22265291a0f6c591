// The admin's side of the cluster (secretshimctl's cluster commands): the
// operations on the etcd data model (docs/cluster.md). Every write is a
// transaction that is safe to repeat: a request that timed out may still
// have landed, so a retry that finds its own write in place counts as
// success. A write that depends on what it read (no assignment uses a
// secret, the nodes a rotation reaches, the copies an assignment revokes) is
// guarded by the revision of that read and retried from a fresh read when
// someone else wrote in between.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"
#include "plugin/cluster/envelope.hpp"
#include "plugin/cluster/etcd_client.hpp"
#include "plugin/cluster/signing.hpp"

namespace secretshim::cluster {

class ClusterAdmin {
public:
    // `signer` signs what nodes read (and registrations); `trusted` checks
    // registrations before a copy is sealed to one (the signer's own public
    // key is added to it).
    ClusterAdmin(std::unique_ptr<cluster::EtcdClient> client, std::optional<cluster::ClusterKey> key,
                 std::optional<cluster::AdminSigningKey> signer = std::nullopt, cluster::TrustedKeys trusted = {})
        : client_(std::move(client)), key_(std::move(key)), signer_(std::move(signer)), trusted_(std::move(trusted)) {
        if (signer_) trusted_.add(signer_->publicKey());
    }

    // Registers (or confirms) a node's X25519 public key, signed; a
    // registration of the same key signed by another key (one being rotated
    // away) or not at all is signed again with this one. The node's etcd
    // user (its certificate's CN) and its role, which may read the node's
    // prefix and nothing else, are made first where missing.
    // `replace`: a node registered with another key (reinstalled, or its
    // key pair made anew) takes this one, and every copy its tasks hold is
    // sealed again to it: none stays sealed to the old key.
    Result<void> addNode(const std::string& node, const cluster::PublicKey& publicKey, bool replace = false);
    Result<nlohmann::json> listNodes();
    // Takes a node out of the cluster: its etcd user and role first (its
    // certificate reads nothing from then on; an agent there keeps what its
    // running containers hold, as when cut off), then its tasks, its copies
    // and its registration. The number of keys deleted.
    Result<std::int64_t> removeNode(const std::string& node);
    Result<std::string> createSecret(const std::string& name, const SecureBuffer& value);  // the id
    Result<std::uint64_t> rotateSecret(const std::string& name, const SecureBuffer& value);  // the new version
    Result<nlohmann::json> listSecrets(const std::string& only = {});
    Result<void> removeSecret(const std::string& name);
    // Seals every secret's master copy again to `next` (the admins' new
    // cluster key), one guarded write each. A master `next` opens already
    // is left as it is, so a run that stopped halfway is finished by running
    // it again. How many were sealed again, and how many already were.
    struct Rekeyed {
        std::size_t sealed = 0;
        std::size_t already = 0;
    };
    Result<Rekeyed> rekey(const cluster::ClusterKey& next);
    // Assigns a task (its specs, the identity it is bound to, how many
    // containers may hold it, its signal) to a node.
    Result<void> assignTask(const std::string& node, const cluster::TaskAssignment& assignment);
    Result<std::string> unassignTask(const std::string& task);  // the node it was on
    Result<nlohmann::json> listTasks();

    // Services, as Docker swarm's: a service holds the grants (`grants`:
    // specs, identity, max containers, signal; its `task` unused), and its
    // tasks, placed on nodes, receive them. Every secret must exist.
    Result<void> createService(const std::string& name, const cluster::TaskAssignment& grants);
    // New grants; each of its tasks placed again with them (reaching their
    // running containers). How many tasks.
    Result<std::size_t> updateService(const std::string& name, const cluster::TaskAssignment& grants);
    // Unassigns each of its tasks (revoked from their containers), then
    // deletes it. How many tasks.
    Result<std::size_t> removeService(const std::string& name);
    Result<nlohmann::json> listServices();
    // Places a task of `service` on `node`; a task placed on another node
    // moves (it leaves that node first). The node it moved from, if any.
    Result<std::string> placeTask(const std::string& task, const std::string& service, const std::string& node);

    // Called just before each guarded transaction is sent: tests run a
    // concurrent admin command here to check the guards.
    void setBeforeCommit(std::function<void()> hook) { beforeCommit_ = std::move(hook); }

    // etcd's limits for one transaction are 128 operations and 1.5 MiB
    // (its defaults: --max-txn-ops, --max-request-bytes); a write that
    // needs more goes in batches of at most `ops` operations and `bytes`
    // bytes (of their JSON form, which is above their size on the wire).
    // Tests set them low to make batches out of a few nodes.
    void setBatchLimits(std::size_t ops, std::size_t bytes) {
        batchOps_ = ops;
        batchBytes_ = bytes;
    }

private:
    struct Assignment {
        std::string node;
        cluster::TaskAssignment task;
        std::vector<std::string> sources;
        std::uint64_t serial = 0;  // of the record read
        bool trusted = false;      // signed by a key this admin trusts (if verified)
        std::string service;       // a placement's service
    };
    struct ServiceRead {
        cluster::Service service;
        std::int64_t modRevision = 0;
    };
    // A service's record, if a trusted admin key signed it.
    Result<ServiceRead> readService(const std::string& name);
    // Grants a service may hold: valid specs, existing secrets.
    Result<void> checkGrants(const cluster::TaskAssignment& grants);
    // Each task of the service placed again with its grants now.
    Result<std::size_t> placeAgain(const std::string& name);
    // assignTask's work: `service` is what the placement names (nullopt: a
    // task of its own, refused if it is a service's); `guards` are more
    // compares for its transaction (the service's record unchanged).
    Result<void> assignOnNode(const std::string& node, const cluster::TaskAssignment& assignment,
                              const std::optional<std::string>& service, const nlohmann::json& guards);
    // The node's etcd user and its signed registration (addNode).
    Result<void> registerNode(const std::string& node, const cluster::PublicKey& publicKey, bool replace);
    // Every task's placement (/secretshim/tasks/), and the revision of that
    // read; `verify`: whether each is checked against the trusted keys
    // (Assignment::trusted), which only a listing of tasks says.
    Result<std::vector<Assignment>> assignments(std::int64_t* revision = nullptr, bool verify = false);
    // A node's task records (not verified), and the revision of that read.
    Result<std::vector<Assignment>> nodeTasks(const std::string& node, std::int64_t* revision = nullptr);
    // The holders of a secret (its index by secret), each signed by a
    // trusted key (else an error naming it), and the revision of that read.
    Result<std::vector<cluster::Holder>> holdersOf(const std::string& name, std::int64_t* revision);
    // The nodes' public keys (each registration signed by a trusted key).
    Result<std::map<std::string, std::string>> publicKeys(const std::set<std::string>& nodes);
    // Whether `ops` fit in one transaction.
    bool fits(const std::vector<nlohmann::json>& ops) const;
    // Sends `ops` in as many transactions as the limits need, each guarded
    // by `compares`. False when a guard failed (what was sent before stays).
    Result<bool> writeBatches(const nlohmann::json& compares, const std::vector<nlohmann::json>& ops);
    Result<const cluster::ClusterKey*> clusterKey();
    Result<const cluster::AdminSigningKey*> signingKey();
    // A node's public key from its registration, if an admin signed it:
    // whoever can write to etcd could otherwise register a key of their own
    // and read every copy sealed to it.
    Result<std::string> nodePublicKey(const std::string& node);
    void beforeCommit() const {
        if (beforeCommit_) beforeCommit_();
    }

    std::unique_ptr<cluster::EtcdClient> client_;
    std::optional<cluster::ClusterKey> key_;
    std::optional<cluster::AdminSigningKey> signer_;
    cluster::TrustedKeys trusted_;
    std::function<void()> beforeCommit_;
    std::size_t batchOps_ = 100;
    std::size_t batchBytes_ = 1 << 20;
};

}  // namespace secretshim::cluster
