#include "plugin/agent/task_records.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <sstream>

#include <nlohmann/json.hpp>

#include "platform/linux/read_all.hpp"
#include "plugin/store/atomic_file.hpp"
#include "plugin/store/private_path.hpp"

namespace secretshim::plugin {
namespace {

constexpr const char* kSuffix = ".task";

// Named by the task's key, never by the id or bundle themselves (the
// runtime's, of any length and content): task_key.cpp.
std::string fileName(const TaskKey& key) { return key.storeName() + kSuffix; }

}  // namespace

Result<TaskRecords> TaskRecords::open(const std::string& dir) {
    // The runtime directory may not exist yet outside systemd (which makes
    // RuntimeDirectory=): one level, 0700, like the socket's directory.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return failErrno("creating runtime directory " + dir);
    platform::UniqueFd parent(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!parent) return failErrno("opening runtime directory " + dir);
    auto tasks = openOrCreateDir(parent.get(), "tasks", dir + "/tasks", DirAccess::ownerOnly);
    if (!tasks) return propagate(tasks);
    return TaskRecords(std::move(*tasks), dir + "/tasks");
}

Result<void> TaskRecords::save(const TaskRecord& r) {
    nlohmann::json record{{"id", r.id}, {"pid", r.pid}, {"start_time", r.startTime}, {"secrets", r.secrets}};
    if (!r.bundle.empty()) record["bundle"] = r.bundle;
    if (!r.task.empty()) record["task"] = r.task;
    if (r.identity) record["identity"] = r.identity->toJson();
    if (r.viewDevice != 0) record["view_device"] = r.viewDevice;
    if (r.bytes != 0) record["bytes"] = r.bytes;
    record["locked"] = r.locked;
    const std::string text = record.dump();
    // No fsync: a record only has to outlive an agent crash (the page cache
    // does); after a node crash no container it names is running. The two
    // fsyncs cost 1-10 ms of every container start (bench row 2b).
    return writeFileAtomic(dir_.get(), path_, fileName(r.key()),
                           {reinterpret_cast<const unsigned char*>(text.data()), text.size()}, 0600,
                           IfExists::replace, Durability::processCrash);
}

void TaskRecords::remove(const TaskKey& key) { (void)::unlinkat(dir_.get(), fileName(key).c_str(), 0); }

std::vector<TaskRecord> TaskRecords::loadAll(std::vector<std::string>& problems) {
    std::vector<TaskRecord> records;
    const int fd = ::openat(dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (!dir) {
        if (fd >= 0) ::close(fd);
        problems.push_back("cannot list " + path_);
        return records;
    }
    while (const dirent* d = ::readdir(dir)) {
        const std::string name = d->d_name;
        if (name.size() <= 5 || name.substr(name.size() - 5) != kSuffix) continue;
        // No symlinks, owner-only; unreadable or over 64 KiB reads as nothing.
        const auto text = readPrivateText(dir_.get(), name, path_ + "/" + name, 64 * 1024).value_or("");
        const auto j = nlohmann::json::parse(text, nullptr, false);
        TaskRecord r;
        // A record without "bundle" was written before bundles were sent:
        // its key has none, and its file the name such records always had.
        if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("pid") ||
            !j["pid"].is_number_integer() || !j.contains("start_time") || !j["start_time"].is_number_unsigned() ||
            !j.contains("secrets") || !j["secrets"].is_string() || (j.contains("bundle") && !j["bundle"].is_string()) ||
            fileName({j["id"].get<std::string>(), j.value("bundle", std::string())}) != name) {
            problems.push_back("unreadable task record " + path_ + "/" + name + ": removed");
            (void)::unlinkat(dir_.get(), name.c_str(), 0);
            continue;
        }
        r.id = j["id"].get<std::string>();
        r.bundle = j.value("bundle", std::string());
        r.pid = j["pid"].get<pid_t>();
        r.startTime = j["start_time"].get<unsigned long long>();
        r.secrets = j["secrets"].get<std::string>();
        if (j.contains("task") && j["task"].is_string()) r.task = j["task"].get<std::string>();
        if (j.contains("view_device") && j["view_device"].is_number_unsigned())
            r.viewDevice = j["view_device"].get<std::uint64_t>();
        if (j.contains("bytes") && j["bytes"].is_number_unsigned()) r.bytes = j["bytes"].get<std::uint64_t>();
        r.locked = !j.contains("locked") || !j["locked"].is_boolean() || j["locked"].get<bool>();
        if (j.contains("identity")) {
            auto identity = WorkloadIdentity::fromJson(j["identity"]);
            if (!identity) {
                problems.push_back("task record " + path_ + "/" + name + ": " + identity.error().message +
                                   ": every revocation of what it holds removes it");
            } else {
                r.identity = std::move(*identity);
            }
        }
        records.push_back(std::move(r));
    }
    ::closedir(dir);
    return records;
}

namespace {

// A /proc file of a dying process fails its reads with ESRCH: read(2),
// not iostreams (readAll).
Result<std::string> readProcFile(const std::string& path) {
    platform::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failErrno("reading " + path);
    return platform::readAll(fd.get(), std::string::npos, path);
}

struct ProcStat {
    char state = '?';
    unsigned long long startTime = 0;
};

Result<ProcStat> readProcStat(pid_t pid) {
    auto read = readProcFile("/proc/" + std::to_string(pid) + "/stat");
    if (!read) return fail("no process " + std::to_string(pid));
    const std::string& text = *read;
    // The command name (field 2) may hold spaces and ')': parse after the last ')'.
    const auto close = text.rfind(')');
    if (close == std::string::npos || close + 2 > text.size()) return fail("no process " + std::to_string(pid));
    std::istringstream rest(text.substr(close + 1));
    ProcStat st;
    std::string field;
    rest >> st.state;  // field 3
    for (int i = 4; i < 22 && rest >> field; ++i) {
    }
    if (!(rest >> st.startTime)) return fail("cannot read the start time of process " + std::to_string(pid));
    return st;
}

}  // namespace

Result<unsigned long long> processStartTime(pid_t pid) {
    auto st = readProcStat(pid);
    if (!st) return propagate(st);
    return st->startTime;
}

bool processRunning(pid_t pid, unsigned long long startTime) {
    auto st = readProcStat(pid);
    if (!st || st->startTime != startTime) return false;
    if (st->state != 'Z' && st->state != 'X') return true;
    // A zombie leader with live threads is still a running process: that is
    // also what /proc shows while a non-leader thread's execve() replaces it.
    DIR* tasks = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
    if (!tasks) return false;
    int threads = 0;
    while (const dirent* d = ::readdir(tasks))
        if (d->d_name[0] != '.') ++threads;
    ::closedir(tasks);
    return threads > 1;
}

Result<pid_t> pidOfPidfd(int pidfd) {
    auto text = readProcFile("/proc/self/fdinfo/" + std::to_string(pidfd));
    if (!text) return fail("not a pidfd");
    std::istringstream in(*text);
    for (std::string key; in >> key;) {
        if (key == "Pid:") {
            long pid = 0;
            in >> pid;
            if (pid <= 0) return fail("the container's init has exited");
            return static_cast<pid_t>(pid);
        }
        std::string rest;
        std::getline(in, rest);
    }
    return fail("not a pidfd");
}

}  // namespace secretshim::plugin
