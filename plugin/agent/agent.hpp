// secretshimd's core: serves the hook and the CLI on a root-only unix
// socket, builds each task's secrets view from the local store, watches the
// container's init through its pidfd, and flushes the view when it exits.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/linux/tmpfs_view.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/agent/config.hpp"
#include "plugin/agent/task_records.hpp"
#include "plugin/store/local_store.hpp"

namespace secretshim::plugin {

class Connection;
class ClusterSource;

// A container with a user namespace names a secret's owner by its own ids:
// maps each reference's uid and gid to the host ids (the init's maps).
Result<void> mapOwnersToHost(pid_t pid, std::vector<mountfs::SecretRef>& refs);

class Agent {
public:
    Agent(boost::asio::io_context& io, AgentConfig config, LocalStore store, TaskRecords records);
    // Takes back the views of containers still running from before a restart.
    void adoptTasks();
    Result<void> listen();  // binds the socket (mode 0600) and starts accepting
    void stop();

    // Request handling, used by Connection.
    struct Reply {
        nlohmann::json body;
        std::vector<int> fds;  // borrowed from the pending view
    };
    struct PendingTask {
        TaskRecord record;
        std::vector<std::string> secrets;
        std::unique_ptr<platform::TmpfsView> view;
        platform::UniqueFd pidfd;
        std::string clusterTask;  // io.secretshim.task (cluster mode)
    };
    Result<PendingTask> prepareTask(const nlohmann::json& request, std::vector<platform::UniqueFd>& fds);
    void startTask(PendingTask task);
    nlohmann::json handle(const nlohmann::json& request, std::vector<platform::UniqueFd>& fds);

    // Cluster mode (plugin/agent/cluster_updates.cpp): secrets come from
    // `source` and its changes reach the running containers.
    void setClusterSource(ClusterSource* source);

private:
    friend class Connection;  // counts itself in connections_
    struct Task {
        TaskRecord record;
        std::vector<std::string> secrets;
        std::unique_ptr<platform::TmpfsView> view;
        std::unique_ptr<boost::asio::posix::stream_descriptor> exitWatch;
    };
    void acceptNext();
    void refuseBusy(platform::UniqueFd fd);
    void addTask(const TaskRecord& record, std::vector<std::string> secrets,
                 std::unique_ptr<platform::TmpfsView> view, platform::UniqueFd pidfd);
    void watchExit(const TaskRecord& record);
    void flushTask(const std::string& id, const char* why);
    std::vector<std::string> tasksUsing(const std::string& name) const;  // container ids
    // Cluster mode (plugin/agent/cluster_updates.cpp).
    Result<void> clusterGrant(const nlohmann::json& request, PendingTask& task, std::map<std::string, SecureBuffer>& values);
    void onClusterSecretChanged(const std::string& name);
    void onClusterTaskChanged(const std::string& clusterTask);
    nlohmann::json clusterStatus() const;
    void signalIfAsked(const std::string& containerId, const std::string& clusterTask);

    boost::asio::io_context& io_;
    AgentConfig config_;
    LocalStore store_;
    TaskRecords records_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> listener_;
    std::map<std::string, Task> tasks_;
    std::shared_ptr<std::size_t> connections_ = std::make_shared<std::size_t>(0);  // open Connections
    std::size_t busyRefused_ = 0;  // refused since the last log line
    std::chrono::steady_clock::time_point lastBusyLog_{};
    ClusterSource* cluster_ = nullptr;
    std::map<std::string, std::string> clusterTasks_;  // container id -> its io.secretshim.task
    std::set<std::string> clusterResync_;  // re-adopted containers not yet brought up to date
};

}  // namespace secretshim::plugin
