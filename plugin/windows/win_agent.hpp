// The Windows agent: serves the named pipe (pipe_protocol.hpp), keeps the
// secrets in the local store, and builds each task's view itself (it runs
// as SYSTEM or an administrator): the hook only names the task, its root
// and its secret specs, so plaintext never passes through the hook.
//
// Each prepared task has a record in <state>\tasks\<sha256(id)>.json (its
// id, root and specs, never a value), written before any file reaches the
// container: after a crash, even one in the middle of a prepare, the
// restarted agent adopts the view from the record and cleanup flushes it.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/windows/symlink_view.hpp"
#include "platform/windows/win_fs.hpp"
#include "plugin/agent/core/agent_core.hpp"
#include "plugin/windows/pipe_channel.hpp"
#include "plugin/windows/win_store.hpp"

namespace secretshim::plugin {

// WinLocalStore as the core's catalog: no grant rules (a Windows container
// has no identity to check), names folded as NTFS folds them.
class WinCatalog final : public SecretCatalog {
public:
    explicit WinCatalog(WinLocalStore& store) : store_(store) {}
    bool supportsGrants() const override { return false; }
    bool sameName(std::string_view a, std::string_view b) const override;
    Result<SecretMeta> create(std::string_view name, mountfs::Bytes value, const std::vector<GrantRule>& rules,
                              const SecretLabels& labels) override;
    Result<SecretMeta> rotate(std::string_view name, mountfs::Bytes value) override {
        return store_.rotate(name, value);
    }
    Result<std::vector<SecretMeta>> list() const override { return store_.list(); }
    Result<void> remove(const std::string& name) override { return store_.remove(name); }

private:
    WinLocalStore& store_;
};

class WinAgent final : public AgentCore {
public:
    // Adopts the tasks recorded in the state directory. `fs` must outlive
    // the agent.
    static Result<std::unique_ptr<WinAgent>> open(WinLocalStore store, platform::WinFs& fs, LogFn log);

    // Serves one client until it closes the pipe or stays silent too long.
    void serve(PipeConnection& connection);
    // One request's reply (secret.create reads its secret.data messages
    // from `connection`); all but create are the core's.
    nlohmann::json handle(const nlohmann::json& request, PipeConnection& connection);

    std::size_t taskCount();

    // For a stop, just before the process exits: waits for the requests in
    // progress to finish and lets no other begin (connections get no more
    // answers). Prepared tasks keep their files and records, and the next
    // start adopts them.
    void stop();

private:
    struct Task {
        std::string root;
        std::string secrets;  // the specs as the hook sent them
        std::unique_ptr<platform::SymlinkView> view;
    };

    WinAgent(WinLocalStore store, platform::WinFs& fs, LogFn log);
    Result<void> adoptRecords();
    Result<std::wstring> recordPath(const std::string& task) const;
    Result<nlohmann::json> prepare(const nlohmann::json& request);
    // secret.create's value, from the secret.data messages that follow it.
    Result<SecureBuffer> receiveValue(const SecretCreateRequest& request, PipeConnection& connection);

    // The core's platform part (plugin/agent/core/agent_core.hpp). A release
    // flushes the task's view before it answers.
    Result<nlohmann::json> release(const ReleaseRequest& request) override;
    Result<nlohmann::json> listTasks(const TaskListRequest& request) override;
    Result<nlohmann::json> status() override;
    Result<nlohmann::json> platformOp(const std::string& op, const nlohmann::json& request) override;
    std::vector<std::string> tasksHolding(const std::string& name) const override;  // mutex_ held
    // A rotated secret's new value, written into each prepared task's view
    // that holds it (SymlinkView::update: renamed over the old file).
    Pushed secretRotated(const SecretMeta& before, mountfs::Bytes value) override;  // mutex_ held
    std::unique_lock<std::mutex> exclusive() override { return std::unique_lock(mutex_); }

    WinLocalStore store_;
    WinCatalog catalog_{store_};
    platform::WinFs& fs_;
    LogFn log_;
    std::mutex mutex_;  // tasks_ and the store, across connection threads
    std::map<std::string, Task> tasks_;
    // Held shared by each request, from its first message to its answer;
    // stop() takes it exclusively and keeps it.
    std::shared_mutex requests_;
};

// A task id as orchestrators make them: 1 to 128 of [A-Za-z0-9_.-],
// starting with a letter or digit.
bool isValidTaskId(std::string_view id);

}  // namespace secretshim::plugin
