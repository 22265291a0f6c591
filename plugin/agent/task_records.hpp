// What the agent remembers of running tasks across its own restarts: one
// small JSON file per task in <runtime_dir>/tasks/ holding the container id
// and bundle (its key, task_key.hpp), its init's pid and start time (to tell
// a reused pid), and the references (names and targets only, never a value).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/agent/task_key.hpp"
#include "plugin/identity/workload_identity.hpp"

namespace secretshim::plugin {

struct TaskRecord {
    std::string id;
    pid_t pid = 0;
    unsigned long long startTime = 0;  // field 22 of /proc/<pid>/stat
    std::string secrets;               // what it was granted, as specs in its own ids
    std::string task = {};             // cluster mode: the task it holds (live updates after a restart)
    // The device number of the view's tmpfs: a restarted agent re-adopts
    // only mounts of that very tmpfs (0: none recorded, nothing re-adopted).
    std::uint64_t viewDevice = 0;
    // Bytes of plaintext in its view at start: counted against the node's
    // limit after a restart too.
    std::uint64_t bytes = 0;
    // Whether the hook locked its mounts at start (userns_lock.hpp): then no
    // mount may be attached live. From the facts of its start, never from
    // what its processes hold later; a record without it reads as locked.
    bool locked = true;
    // Who it is, for grants revoked while it runs. A record written before
    // grants existed has none: every revocation of a secret it holds
    // removes that secret from it.
    std::optional<WorkloadIdentity> identity = {};
    // The bundle the runtime gave the hook: with the id, which container
    // this is (task_key.hpp). "" in a record written before bundles were
    // sent; such a record still loads and its task is re-adopted. Last, so
    // that records written as {id, pid, ...} keep their meaning.
    std::string bundle = {};

    TaskKey key() const { return {id, bundle}; }
    // The task's stable name, unique per key, safe as a file name and as a
    // systemd FDNAME: its record is <runtime_dir>/tasks/<storeName()>.task.
    std::string storeName() const { return key().storeName(); }
};

class TaskRecords {
public:
    // Records live in <dir>/tasks (created 0700 when missing). `dir` is the
    // runtime directory, a tmpfs such as /run/secretshim: records only have
    // to outlive the agent, not the node (no container survives a reboot
    // either), and a tmpfs makes saving one nearly free.
    static Result<TaskRecords> open(const std::string& dir);
    Result<void> save(const TaskRecord& record);
    void remove(const TaskKey& key);
    // Every readable record; unreadable ones are reported and removed.
    std::vector<TaskRecord> loadAll(std::vector<std::string>& problems);

private:
    TaskRecords(platform::UniqueFd dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}
    platform::UniqueFd dir_;
    std::string path_;
};

// The start time of a process in clock ticks since boot, as /proc shows it.
Result<unsigned long long> processStartTime(pid_t pid);
// Whether the process still runs: present in /proc, not a zombie, and
// started when the record says (a reused pid is another process).
bool processRunning(pid_t pid, unsigned long long startTime);
// The pid a pidfd refers to, from /proc/self/fdinfo.
Result<pid_t> pidOfPidfd(int pidfd);

}  // namespace secretshim::plugin
