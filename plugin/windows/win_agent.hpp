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
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/windows/symlink_view.hpp"
#include "platform/windows/win_fs.hpp"
#include "plugin/windows/pipe_channel.hpp"
#include "plugin/windows/win_store.hpp"

namespace secretshim::plugin {

using LogFn = std::function<void(const std::string& line)>;

class WinAgent {
public:
    // Adopts the tasks recorded in the state directory. `fs` must outlive
    // the agent.
    static Result<std::unique_ptr<WinAgent>> open(WinLocalStore store, platform::WinFs& fs, LogFn log);

    // Serves one client until it closes the pipe or stays silent too long.
    void serve(PipeConnection& connection);
    // One request's reply (secret.create reads its secret.data messages
    // from `connection`).
    nlohmann::json handle(const nlohmann::json& request, PipeConnection& connection);

    std::size_t taskCount();

private:
    struct Task {
        std::string root;
        std::string secrets;  // the specs as the hook sent them
        std::unique_ptr<platform::SymlinkView> view;
    };

    WinAgent(WinLocalStore store, platform::WinFs& fs, LogFn log)
        : store_(std::move(store)), fs_(fs), log_(std::move(log)) {}
    Result<void> adoptRecords();
    Result<std::wstring> recordPath(const std::string& task) const;
    Result<nlohmann::json> prepare(const nlohmann::json& request);
    Result<nlohmann::json> cleanup(const nlohmann::json& request);
    Result<nlohmann::json> createSecret(const nlohmann::json& request, PipeConnection& connection);
    Result<nlohmann::json> listSecrets(const nlohmann::json& request);  // secret.ls and secret.inspect
    Result<nlohmann::json> removeSecret(const nlohmann::json& request);
    Result<nlohmann::json> listTasks(const nlohmann::json& request);
    Result<nlohmann::json> status();
    // The tasks whose view holds secret `name` (mutex_ held).
    std::vector<std::string> tasksUsing(std::string_view name) const;

    WinLocalStore store_;
    platform::WinFs& fs_;
    LogFn log_;
    std::mutex mutex_;  // tasks_ and the store, across connection threads
    std::map<std::string, Task> tasks_;
};

// A task id as orchestrators make them: 1 to 128 of [A-Za-z0-9_.-],
// starting with a letter or digit.
bool isValidTaskId(std::string_view id);

}  // namespace secretshim::plugin
