// Test fixtures for privileged tests: a throwaway busybox rootfs and a
// "container" — a process parked in a mount namespace of its own — plus
// ways to look at both from inside and from the host.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"
#include "tests/support/temp_dir.hpp"

namespace secretshim::test {

// Lays out a minimal busybox-static root filesystem in `dir`.
void makeBusyboxRootfs(const std::string& dir);

class FakeContainer {
public:
    explicit FakeContainer(std::string rootfs);
    ~FakeContainer();
    FakeContainer(const FakeContainer&) = delete;
    FakeContainer& operator=(const FakeContainer&) = delete;

    pid_t pid() const { return pid_; }
    int pidfd() const { return pidfd_.get(); }
    const std::string& rootfs() const { return rootfs_; }
    void kill();  // SIGKILL and reap; idempotent

private:
    std::string rootfs_;
    pid_t pid_ = -1;
    platform::UniqueFd pidfd_;
};

// Runs fn inside the container's mount namespace, chrooted to its rootfs, as
// uid:gid, and returns what fn returned (a string) or its error.
Result<std::string> runInside(const FakeContainer& c, uid_t uid, gid_t gid,
                              const std::function<Result<std::string>()>& fn);

// Reads a file inside the container as uid:gid.
Result<std::string> readInside(const FakeContainer& c, const std::string& path, uid_t uid = 0,
                               gid_t gid = 0);

struct StatInfo {
    uid_t uid;
    gid_t gid;
    unsigned mode;  // permission bits
    bool regular;
};
Result<StatInfo> statInside(const FakeContainer& c, const std::string& path);

struct MountEntry {
    std::string mountPoint;
    std::string options;       // per-mount options
    std::string fsType;
    std::string superOptions;  // per-superblock options
};
std::vector<MountEntry> mountInfo(const std::string& procPidMountinfo);
// Mounts of the container, with mount points as the container sees them
// (relative to its rootfs, "/run/secrets").
std::vector<MountEntry> containerMounts(const FakeContainer& c);
// Whether any process on the host sees a mount at or below `dir`.
bool anyMountBelow(const std::string& dir, pid_t except = -1);

bool hasOption(const std::string& options, const std::string& option);
long shmemKiB();
bool pathExists(const std::string& path);

}  // namespace secretshim::test
