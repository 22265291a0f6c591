#include "tests/support/container_fixture.hpp"

#include "platform/linux/mount_api.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmount/libmount.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace secretshim::test {
namespace fs = std::filesystem;

void makeBusyboxRootfs(const std::string& dir) {
    for (const char* d : {"bin", "etc", "tmp", "proc", "dev", "run"}) fs::create_directories(dir + "/" + d);
    fs::copy_file("/bin/busybox", dir + "/bin/busybox");
    for (const char* tool : {"sh", "cat", "ls", "stat", "sleep"}) fs::create_symlink("busybox", dir + "/bin/" + tool);
    std::ofstream(dir + "/etc/passwd") << "root:x:0:0:root:/:/bin/sh\n";
}

FakeContainer::FakeContainer(std::string rootfs) : rootfs_(std::move(rootfs)) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        ::close(ready[0]);
        // Like a runtime's init before pivot_root: its own, private mount
        // namespace with the rootfs as a plain directory in it.
        const bool ok = ::unshare(CLONE_NEWNS) == 0 &&
                        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
        const char byte = ok ? '1' : '0';
        (void)!::write(ready[1], &byte, 1);
        ::close(ready[1]);
        for (;;) ::pause();
    }
    ::close(ready[1]);
    char byte = 0;
    const bool ok = ::read(ready[0], &byte, 1) == 1 && byte == '1';
    ::close(ready[0]);
    pidfd_.reset(platform::sysPidfdOpen(pid_, 0));
    if (!ok || !pidfd_) {
        kill();
        throw std::runtime_error("could not start the fake container");
    }
}

FakeContainer::~FakeContainer() { kill(); }

void FakeContainer::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
}

Result<std::string> runInside(const FakeContainer& c, uid_t uid, gid_t gid,
                              const std::function<Result<std::string>()>& fn) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return failErrno("pipe");
    const pid_t pid = ::fork();
    if (pid < 0) return failErrno("fork");
    if (pid == 0) {
        ::close(out[0]);
        Result<std::string> r;
        if (::setns(c.pidfd(), CLONE_NEWNS) != 0 || ::chroot(c.rootfs().c_str()) != 0 || ::chdir("/") != 0 ||
            ::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0)
            r = failErrno("entering the container");
        else
            r = fn();
        const std::string msg = r ? "+" + *r : "-" + r.error().message;
        for (std::size_t done = 0; done < msg.size();) {
            const ssize_t n = ::write(out[1], msg.data() + done, msg.size() - done);
            if (n <= 0) ::_exit(1);
            done += static_cast<std::size_t>(n);
        }
        ::_exit(0);
    }
    ::close(out[1]);
    std::string msg;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (msg.empty()) return fail("the helper inside the container died");
    if (msg[0] == '+') return msg.substr(1);
    return fail(msg.substr(1));
}

Result<std::string> readInside(const FakeContainer& c, const std::string& path, uid_t uid, gid_t gid) {
    return runInside(c, uid, gid, [&]() -> Result<std::string> {
        std::ifstream in(path, std::ios::binary);
        if (!in) return failErrno("open " + path);
        std::ostringstream s;
        s << in.rdbuf();
        return s.str();
    });
}

Result<StatInfo> statInside(const FakeContainer& c, const std::string& path) {
    auto r = runInside(c, 0, 0, [&]() -> Result<std::string> {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return failErrno("stat " + path);
        return std::to_string(st.st_uid) + " " + std::to_string(st.st_gid) + " " +
               std::to_string(st.st_mode & 07777) + " " + (S_ISREG(st.st_mode) ? "1" : "0");
    });
    if (!r) return propagate(r);
    StatInfo info{};
    int regular = 0;
    std::istringstream(*r) >> info.uid >> info.gid >> info.mode >> regular;
    info.regular = regular == 1;
    return info;
}

// libmount reads the table as the kernel writes it: octal escapes in paths
// undone (a space is "\040"), the optional fields skipped.
std::vector<MountEntry> mountInfo(const std::string& procPidMountinfo) {
    std::vector<MountEntry> entries;
    const std::unique_ptr<libmnt_table, decltype(&mnt_unref_table)> table(
        mnt_new_table_from_file(procPidMountinfo.c_str()), mnt_unref_table);
    const std::unique_ptr<libmnt_iter, decltype(&mnt_free_iter)> iter(mnt_new_iter(MNT_ITER_FORWARD), mnt_free_iter);
    if (!table || !iter) return entries;
    const auto text = [](const char* s) { return std::string(s ? s : ""); };
    libmnt_fs* fs = nullptr;
    while (mnt_table_next_fs(table.get(), iter.get(), &fs) == 0)
        entries.push_back({text(mnt_fs_get_target(fs)), text(mnt_fs_get_vfs_options(fs)), text(mnt_fs_get_fstype(fs)),
                           text(mnt_fs_get_fs_options(fs))});
    return entries;
}

std::vector<MountEntry> containerMounts(const FakeContainer& c) {
    std::vector<MountEntry> out;
    for (auto& e : mountInfo("/proc/" + std::to_string(c.pid()) + "/mountinfo")) {
        if (e.mountPoint.rfind(c.rootfs() + "/", 0) != 0) continue;
        e.mountPoint = e.mountPoint.substr(c.rootfs().size());
        out.push_back(std::move(e));
    }
    return out;
}

bool anyMountBelow(const std::string& dir, pid_t except) {
    DIR* proc = ::opendir("/proc");
    if (!proc) return true;
    bool found = false;
    while (dirent* d = ::readdir(proc)) {
        const pid_t pid = static_cast<pid_t>(std::atoi(d->d_name));
        if (pid <= 0 || pid == except) continue;
        for (const auto& e : mountInfo(std::string("/proc/") + d->d_name + "/mountinfo"))
            if (e.mountPoint == dir || e.mountPoint.rfind(dir + "/", 0) == 0) found = true;
    }
    ::closedir(proc);
    return found;
}

bool hasOption(const std::string& options, const std::string& option) {
    return mnt_optstr_get_option(options.c_str(), option.c_str(), nullptr, nullptr) == 0;
}

long shmemKiB() {
    std::ifstream in("/proc/meminfo");
    for (std::string key; in >> key;) {
        long value = 0;
        std::string unit;
        in >> value >> unit;
        if (key == "Shmem:") return value;
    }
    return -1;
}

bool pathExists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace secretshim::test
