#include "plugin/store/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "platform/linux/unique_fd.hpp"
#include "plugin/store/random_hex.hpp"

namespace secretshim::plugin {
namespace {

using platform::UniqueFd;

constexpr int kCreateAttempts = 8;

// Removes the temporary file unless it was renamed into place.
class TempName {
public:
    TempName(int dirFd, std::string name) : dirFd_(dirFd), name_(std::move(name)) {}
    TempName(const TempName&) = delete;
    TempName& operator=(const TempName&) = delete;
    ~TempName() {
        if (!committed_) ::unlinkat(dirFd_, name_.c_str(), 0);
    }
    const char* c_str() const { return name_.c_str(); }
    void commit() { committed_ = true; }

private:
    int dirFd_;
    std::string name_;
    bool committed_ = false;
};

Result<void> writeAll(int fd, std::span<const unsigned char> data, const std::string& path) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("writing " + path);
        done += static_cast<std::size_t>(n);
    }
    return {};
}

// Moves tmp to name without replacing an existing file.
int renameNoReplace(int dirFd, const char* tmp, const char* name) {
    if (::renameat2(dirFd, tmp, dirFd, name, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    // Filesystems without RENAME_NOREPLACE: link() refuses an existing name too.
    if (::linkat(dirFd, tmp, dirFd, name, 0) != 0) return -1;
    ::unlinkat(dirFd, tmp, 0);
    return 0;
}

}  // namespace

Result<void> writeFileAtomic(int dirFd, const std::string& dirPath, const std::string& name,
                             std::span<const unsigned char> data, mode_t mode, IfExists ifExists,
                             Durability durability) {
    const std::string path = dirPath + "/" + name;
    UniqueFd fd;
    std::string tmpName;
    for (int attempt = 0; attempt < kCreateAttempts && !fd; ++attempt) {
        auto suffix = randomHex(8);
        if (!suffix) return propagate(suffix, "writing " + path);
        // A leading dot keeps temporary files out of every valid secret name.
        tmpName = "." + name + ".tmp." + *suffix;
        fd.reset(::openat(dirFd, tmpName.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0600));
        if (!fd && errno != EEXIST) return failErrno("creating a temporary file for " + path);
    }
    if (!fd) return failErrno("creating a temporary file for " + path);
    TempName tmp(dirFd, tmpName);

    // Root may run with a non-root group; the file must not be readable by it.
    if (::geteuid() == 0 && ::fchown(fd.get(), 0, 0) != 0) return failErrno("chown 0:0 " + path);
    if (::fchmod(fd.get(), mode) != 0) return failErrno("chmod " + path);
    if (auto ok = writeAll(fd.get(), data, path); !ok) return ok;
    const bool sync = durability == Durability::machineCrash;
    if (sync && ::fsync(fd.get()) != 0) return failErrno("fsync " + path);

    const int rc = ifExists == IfExists::fail ? renameNoReplace(dirFd, tmp.c_str(), name.c_str())
                                              : ::renameat(dirFd, tmp.c_str(), dirFd, name.c_str());
    if (rc != 0) {
        if (errno == EEXIST) return failWith(EEXIST, path + " already exists");
        return failErrno("renaming a temporary file to " + path);
    }
    tmp.commit();
    // The rename is durable only once the directory entry is on disk.
    if (sync && ::fsync(dirFd) != 0) return failErrno("fsync " + dirPath);
    return {};
}

}  // namespace secretshim::plugin
