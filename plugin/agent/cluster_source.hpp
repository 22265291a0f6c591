// The agent's cluster source (source: etcd): reads this node's prefix in
// etcd, watches it from the read's revision + 1 in a thread of its own, and
// keeps the node's task assignments and its encrypted per-node copies. A
// secret is decrypted only on demand, into a SecureBuffer, for the view
// being built or updated; no plaintext is cached.
//
// Disconnected (no endpoint answers after a round of retries): the running
// containers keep their views; assignments and copies that no running task
// uses are dropped; a new container whose task and secrets are not held is
// refused with "control plane unreachable". On reconnect: a full read, then
// the watch again, and the differences go to the running containers.
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugin/agent/secret_source.hpp"
#include "plugin/cluster/envelope.hpp"
#include "plugin/config/agent_config.hpp"
#include "plugin/cluster/etcd_client.hpp"
#include "plugin/cluster/model.hpp"
#include "plugin/cluster/signing.hpp"
#include "plugin/agent/serial_floor.hpp"

namespace secretshim::plugin {

class ClusterSource final : public SecretSource {
public:
    // Loads the TLS material, the password, the admin keys it trusts, the
    // serials it has accepted and the node key pair
    // (<state_dir>/cluster-node.key, created when missing).
    static Result<std::unique_ptr<ClusterSource>> create(boost::asio::io_context& io, const AgentConfig& config);
    ~ClusterSource();

    // Starts the watch thread. Callbacks run on the io_context's thread.
    struct Callbacks {
        std::function<std::set<std::string>()> runningTasks;           // cluster task ids in use
        std::function<void(const std::string& task)> taskChanged;      // assignment put or deleted
        std::function<void(const std::string& name)> secretChanged;    // a new version of a copy
    };
    void start(Callbacks callbacks);
    void stop();

    // What a container that claims `task` gets, if the task is bound to its
    // identity: the assignment's specs and values (io thread only).
    Result<GrantedSecrets> grant(const WorkloadIdentity& identity, const std::string& secrets,
                                 const std::string& task) override;
    // One secret's plaintext for a running task's update.
    Result<SecureBuffer> value(const std::string& name);
    // The copy of a secret this node holds (io thread only), and its
    // plaintext.
    Result<const cluster::NodeSecret*> copyOf(const std::string& name) const;
    Result<SecureBuffer> open(const cluster::NodeSecret& copy) const;
    const cluster::TaskAssignment* assignment(const std::string& task) const;
    nlohmann::json status() const;
    const std::string& node() const { return node_; }

private:
    ClusterSource(boost::asio::io_context& io, std::unique_ptr<cluster::EtcdClient> client, cluster::NodeKeyPair key,
                  std::string stateDir, std::string node, cluster::TrustedKeys admins, SerialFloor floor);
    void run();  // the watch thread
    // Applied on the io thread.
    void applySnapshot(std::vector<cluster::KeyValue> kvs, std::int64_t revision);
    void applyEvents(std::vector<cluster::WatchEvent> events, std::int64_t revision,
                     std::chrono::steady_clock::time_point received = {});
    void applyPut(const cluster::KeyValue& kv, std::set<std::string>& tasks, std::set<std::string>& secrets);
    void applyPublished(const cluster::KeyValue& kv, std::set<std::string>& secrets);
    void applyDelete(const std::string& key, std::set<std::string>& tasks);
    // Whether a record at `key` is an admin's (signed by a trusted key) and
    // not older than what this node accepted there; logs why not.
    template <class Record>
    bool trusted(const std::string& key, const Record& record) const;
    // The copy of `name` at its published version (nullptr: none held).
    const cluster::NodeSecret* current(const std::string& name) const;
    // Adds `name` to `secrets` when its current copy is not `before`.
    void noteCurrent(const std::string& name, const cluster::NodeSecret* before, std::set<std::string>& secrets);
    void saveFloor();
    void markContact(std::int64_t revision);
    void markDisconnected(const std::string& why);
    void notify(const std::set<std::string>& tasks, const std::set<std::string>& secrets);
    Result<void> unreachable(const std::string& what) const;

    boost::asio::io_context& io_;
    std::unique_ptr<cluster::EtcdClient> client_;
    cluster::NodeKeyPair key_;
    // While the node's key is rotated: the next key pair, read from the
    // state directory the first time a copy does not open with key_ (io
    // thread; then only read).
    std::optional<cluster::NodeKeyPair> next_;
    std::string stateDir_;
    std::string node_;
    std::string prefix_;
    cluster::TrustedKeys admins_;
    SerialFloor floor_;  // io thread
    Callbacks callbacks_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    // SECRETSHIM_TRACE_UPDATES=1: one line per applied watch message with
    // CLOCK_MONOTONIC times (received, apply start, applied), so a benchmark
    // can split etcd delivery, the io thread's queue and the apply itself.
    const bool trace_ = std::getenv("SECRETSHIM_TRACE_UPDATES") != nullptr;

    // io thread state
    std::map<std::string, cluster::TaskAssignment> tasks_;
    // name -> version -> copy: a rotation's new version arrives before it
    // is published, and an old one stays until the admin deletes it.
    std::map<std::string, std::map<std::uint64_t, cluster::NodeSecret>> copies_;
    std::map<std::string, std::uint64_t> published_;  // secret id -> its published version
    bool connected_ = false;
    bool synced_ = false;  // a full read happened since the last disconnect
    std::int64_t revision_ = 0;
    std::chrono::steady_clock::time_point lastContact_{};
    std::string lastError_;
};

}  // namespace secretshim::plugin
