// secretshimd's core: serves the hook and the CLI on a root-only unix
// socket, asks its source of secrets what a container is granted, builds
// the task's secrets view from the answer, watches the container's init
// through its pidfd, and flushes the view when it exits.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/linux/tmpfs_view.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/agent/core/agent_core.hpp"
#include "plugin/config/agent_config.hpp"
#include "plugin/agent/fd_store.hpp"
#include "plugin/agent/metrics.hpp"
#include "plugin/agent/secret_source.hpp"
#include "plugin/agent/task_records.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::cluster {
struct TaskAssignment;
}  // namespace secretshim::cluster

namespace secretshim::plugin {

class Connection;
class ClusterSource;
class LocalSource;

// What a container being created counts against a limit (a cluster task's
// max_containers, the node's plaintext bytes) until it is started, when the
// running task counts instead: two creates at once cannot both pass the
// limit. Move-only; counts down when it goes.
class Reservation {
public:
    using Counts = std::map<std::string, std::size_t>;
    Reservation() = default;
    Reservation(std::shared_ptr<Counts> counts, std::string name, std::size_t amount);
    Reservation(Reservation&& other) noexcept
        : counts_(std::move(other.counts_)), name_(std::move(other.name_)), amount_(other.amount_) {}
    Reservation& operator=(Reservation&& other) noexcept;
    ~Reservation() { release(); }
    void release();

private:
    std::shared_ptr<Counts> counts_;
    std::string name_;
    std::size_t amount_ = 0;
};

// For a log entry's fields: who a container is, as its record holds it.
inline const WorkloadIdentity* identityOf(const TaskRecord& record) {
    return record.identity ? &*record.identity : nullptr;
}
// Secret names for a log entry's fields: comma-separated.
std::string joinNames(const std::vector<std::string>& names);

// A container with a user namespace names a secret's owner by its own ids:
// maps each reference's uid and gid to the host ids (the init's maps).
Result<void> mapOwnersToHost(pid_t pid, std::vector<mountfs::SecretRef>& refs);

class Agent final : public AgentCore {
public:
    // `local` is the source of secrets until setClusterSource() replaces it;
    // null on a node with source: etcd (the local admin verbs are refused).
    // `fdStore`: where running containers' views are kept across a crash of
    // the agent (systemd's fd store), or null.
    Agent(boost::asio::io_context& io, AgentConfig config, TaskRecords records, LocalSource* local,
          FdStore* fdStore = nullptr);
    // Takes back the views of containers still running from before a
    // restart: from `stored` (what the fd store handed back) where it holds
    // them, else from their mounts in the containers. The views the store
    // kept for containers that exited meanwhile, or for no task at all, are
    // wiped.
    void adoptTasks(std::vector<StoredFd> stored = {});
    Result<void> listen();  // binds the socket (mode 0600) and starts accepting
    void stop();
    // A reload's configuration (main.cpp, on SIGHUP; plugin/config's
    // reloadConfig() kept what cannot change live): its limits hold for the
    // requests that follow. Running views are untouched.
    void reconfigure(const AgentConfig& config) { config_ = config; }

    // Request handling, used by Connection.
    struct Reply {
        nlohmann::json body;
        std::vector<int> fds;  // borrowed from the pending view
    };
    struct PendingTask {
        TaskRecord record;  // with the identity and what was granted
        std::vector<std::string> secrets;
        std::unique_ptr<platform::TmpfsView> view;
        platform::UniqueFd pidfd;
        Reservation claim;      // counts it against its cluster task's limit
        Reservation held;       // counts its bytes against the node's limit
        std::uint64_t rotations = 0;  // rotations_ when its view was built
    };
    // Why a create was refused, beside its line: the kind (one of a fixed
    // set: the metrics' reason label and the audit entry's
    // SECRETSHIM_REASON, docs/admin-guide.md), and what was known by then
    // of who asked and for what.
    struct Refused {
        Refusal kind = Refusal::badRequest;
        std::optional<WorkloadIdentity> identity;
        std::string secrets;  // names, comma-separated
        std::string task;
    };
    // Counts a refusal in the metrics.
    Result<PendingTask> prepareTask(const CreateRequest& request, std::vector<platform::UniqueFd>& fds, Refused& why);
    void startTask(PendingTask task);
    // A create refused before prepareTask() could judge it (its request did
    // not parse), or after (the hook could not attach): counted.
    void refused(Refusal reason) { metrics_.refused(reason); }
    // The metrics page (Prometheus' text format): what it counted, and what
    // status says it holds.
    std::string metricsText();
    // Every other op (the core's), with what came beside it: secret.create's
    // value is a sealed memfd.
    nlohmann::json handle(const nlohmann::json& request, std::vector<platform::UniqueFd>& fds);

    // Cluster mode (plugin/agent/cluster_updates.cpp): secrets come from
    // `source` and its changes reach the running containers.
    void setClusterSource(ClusterSource* source);
    // How many containers hold, or are being given, claim `name`; how many
    // bytes of plaintext the running and the pending views hold.
    std::size_t holders(const std::string& name) const;
    std::size_t heldBytes() const;

private:
    friend class Connection;  // counts itself in connections_
    struct Task {
        TaskRecord record;
        std::vector<std::string> secrets;
        std::unique_ptr<platform::TmpfsView> view;
        std::unique_ptr<boost::asio::posix::stream_descriptor> exitWatch;
        std::string storedAs;  // its view's name in the fd store; empty: not there
    };
    // prepareTask()'s steps; `why`: why, if it refuses.
    Result<PendingTask> buildTask(const CreateRequest& request, std::vector<platform::UniqueFd>& fds, Refused& why);
    void acceptNext();
    void refuseBusy(platform::UniqueFd fd);
    void addTask(const TaskRecord& record, std::vector<std::string> secrets,
                 std::unique_ptr<platform::TmpfsView> view, platform::UniqueFd pidfd, std::string storedAs);
    // adoptTasks() for one record: the container runs no more.
    void forgetExited(const TaskRecord& record, StoredFd stored);
    // adoptTasks() for the fds the store kept for no record.
    void wipeUnclaimed(std::vector<StoredFd> stored);
    // Refuses a container's secrets over the per-container or the node's
    // limits, before anything is decrypted; their bytes otherwise.
    Result<std::size_t> checkLimits(const mountfs::PayloadSource& payloads) const;
    void watchExit(const TaskRecord& record);
    // By value: a caller may pass the key of the very map entry it erases.
    void flushTask(TaskKey key, const char* why);
    // A poststop's "release": flushes the task it names, never a guess.
    void releaseTask(const std::string& id, const std::string& bundle);
    std::vector<TaskKey> tasksUsing(const std::string& name) const;
    // The core's platform part (core/agent_core.hpp). A release flushes
    // later, off the hook's path; a revoked grant is applied to the running
    // containers at once.
    Result<nlohmann::json> release(const ReleaseRequest& request) override;
    Result<nlohmann::json> listTasks(const TaskListRequest& request) override;
    Result<nlohmann::json> status() override;
    std::vector<std::string> tasksHolding(const std::string& name) const override;
    void grantRevoked(const std::string& name) override;
    // A secret's new value for the running containers (rotation.cpp).
    Result<void> checkRotation(const SecretMeta& before, std::size_t size) const override;
    Pushed secretRotated(const SecretMeta& before, mountfs::Bytes value) override;
    // Writes secret `name`'s new value (asked of `value` once, on first
    // need) into every running view that holds it; one log line for each
    // container not updated. The containers at least one of whose entries
    // got it, and how many had one that did not.
    using ValueFn = std::function<Result<mountfs::Bytes>()>;
    struct PushResult {
        std::vector<TaskKey> updated;
        std::size_t failed = 0;
    };
    PushResult pushValue(const std::string& name, const ValueFn& value, const TaskKey* only = nullptr);
    // A task whose view was built before a local rotation of one of its
    // secrets, and attached after it, gets the store's value now.
    void catchUpRotations(const TaskKey& key, std::uint64_t builtAt);
    // nri.create and nri.stop, from secretshim-nri.
    Result<nlohmann::json> platformOp(const std::string& op, const nlohmann::json& request) override;
    Result<nlohmann::json> nriCreate(const nlohmann::json& request, Refusal& reason);
    void nriStop(const std::string& id);
    // Zeroes and removes the entries of a running task at `targets` (a
    // single-file target's mount detached), one log line each; whether
    // any went.
    bool revokeTargets(Task& t, const std::vector<std::string>& targets);
    // Keeps of `refs` (as the container asked for them) what its view still
    // holds, as its secret names and its record.
    void keepHeld(Task& t, const std::vector<mountfs::SecretRef>& refs);
    // Cluster mode (plugin/agent/cluster_updates.cpp).
    void onClusterSecretChanged(const std::string& name);
    void onClusterTaskChanged(const std::string& clusterTask);
    // Its steps for one running container of the task.
    void applyAssignment(const TaskKey& key, Task& t, const std::string& clusterTask,
                         const cluster::TaskAssignment& a, bool resync);
    void rewriteHeld(Task& t, const std::string& id);
    bool grantAdded(Task& t, const std::string& id, const std::vector<mountfs::SecretRef>& mapped);
    Result<void> addLive(Task& t, const mountfs::SecretRef& ref);
    void keepAssigned(Task& t, const std::vector<mountfs::SecretRef>& refs,
                      const std::vector<mountfs::SecretRef>& mapped, const std::string& wanted);
    nlohmann::json clusterStatus() const;
    void signalIfAsked(const TaskKey& key, const std::string& clusterTask);

    boost::asio::io_context& io_;
    AgentConfig config_;
    TaskRecords records_;
    SecretSource* source_ = nullptr;  // the local store or the cluster
    LocalSource* local_ = nullptr;    // local mode only
    FdStore* fdStore_ = nullptr;      // null: not run by systemd
    std::unique_ptr<boost::asio::posix::stream_descriptor> listener_;
    // Running tasks by container id and bundle (task_key.hpp): the same id
    // may run in two containerd namespaces at once.
    std::map<TaskKey, Task> tasks_;
    std::shared_ptr<std::size_t> connections_ = std::make_shared<std::size_t>(0);  // open Connections
    std::size_t busyRefused_ = 0;  // refused since the last log line
    std::chrono::steady_clock::time_point lastBusyLog_{};
    ClusterSource* cluster_ = nullptr;
    AgentMetrics metrics_;
    std::map<TaskKey, std::string> clusterTasks_;  // container -> the cluster task it holds
    // Created, not yet attached: containers by cluster task, and their bytes
    // (under the name "").
    std::shared_ptr<Reservation::Counts> pendingClaims_ = std::make_shared<Reservation::Counts>();
    std::shared_ptr<Reservation::Counts> pendingBytes_ = std::make_shared<Reservation::Counts>();
    std::set<TaskKey> clusterResync_;  // re-adopted containers not yet brought up to date
    // Local rotations so far, and the count at each secret's last one.
    std::uint64_t rotations_ = 0;
    std::map<std::string, std::uint64_t> rotatedAt_;
    // Containers the runtime announced over NRI (secretshim-nri), by id,
    // until they start (or stop, or are removed unstarted): who each is and
    // what its pod asks for it.
    struct NriClaim {
        WorkloadIdentity identity;
        std::string secrets;
        std::string task;
    };
    std::map<std::string, NriClaim> nriClaims_;
};

}  // namespace secretshim::plugin
