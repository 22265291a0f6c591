#include "platform/linux/view_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>
#include <vector>

#include "platform/linux/mount_api.hpp"

namespace secretshim::platform {

namespace {

constexpr std::uint64_t kInsideView = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
constexpr std::size_t kPage = 4096;

struct DirEntry {
    std::string name;
    bool directory = false;
};

// The entries of directory `path` below `root`, read and closed before any
// is touched: a walk holds one directory open at a time.
Result<std::vector<DirEntry>> listDirectory(int root, const std::string& path) {
    UniqueFd fd(sysOpenat2(root, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, kInsideView));
    if (!fd) return failErrno("opening " + path);
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd.get()), &::closedir);
    if (!dir) return failErrno("listing " + path);
    (void)fd.release();  // the DIR owns it now
    std::vector<DirEntry> entries;
    errno = 0;
    while (const dirent* d = ::readdir(dir.get())) {
        const std::string name = d->d_name;
        if (name == "." || name == "..") continue;
        bool directory = d->d_type == DT_DIR;
        struct stat st {};
        if (d->d_type == DT_UNKNOWN && ::fstatat(::dirfd(dir.get()), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
            directory = S_ISDIR(st.st_mode);
        entries.push_back({name, directory});
        errno = 0;
    }
    if (errno != 0) return failErrno("listing " + path);
    return entries;
}

}  // namespace

Result<ViewFile> openViewFile(int root, const std::string& path, int flags) {
    ViewFile f;
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    f.name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (f.name.empty() || f.name == "." || f.name == "..") return fail(path + " is not a file name");
    f.parent.reset(sysOpenat2(root, dir.c_str(), O_PATH | O_DIRECTORY, kInsideView));
    if (!f.parent) return failErrno("opening the directory of " + path);
    f.fd.reset(::openat(f.parent.get(), f.name.c_str(), flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
    if (!f.fd) return failErrno("opening " + path);
    if (auto ok = checkRegular(f.fd.get(), path); !ok) return propagate(ok);
    return f;
}

Result<void> checkRegular(int fd, const std::string& shown) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno("inspecting " + shown);
    if (!S_ISREG(st.st_mode)) return fail(shown + " is not a regular file: left as it is");
    return {};
}

// Every page of a file is overwritten before it is truncated: truncating
// alone would return the pages holding the secret to the page allocator as
// they are (unless the kernel runs with init_on_free). One pwritev() of the
// same zero page repeated covers a file of up to kZeroPages pages (every
// payload up to 512 KiB), instead of one pwrite() per page.
Result<void> wipeFile(int fd) {
    constexpr std::size_t kZeroPages = 128;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno("inspecting a secret file");
    static const unsigned char zeros[kPage] = {};
    iovec iov[kZeroPages];
    for (off_t off = 0; off < st.st_size;) {
        std::size_t left = static_cast<std::size_t>(st.st_size - off), n = 0;
        for (; n < kZeroPages && left > 0; ++n) {
            iov[n] = {const_cast<unsigned char*>(zeros), std::min(kPage, left)};
            left -= iov[n].iov_len;
        }
        const ssize_t written = ::pwritev(fd, iov, static_cast<int>(n), off);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return failErrno("overwriting a secret file");
        off += written;
    }
    if (::ftruncate(fd, 0) != 0) return failErrno("truncating a secret file");
    return {};
}

Result<void> wipeMounted(int mountFd) {
    UniqueFd fd(::open(("/proc/self/fd/" + std::to_string(mountFd)).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd) return failErrno("opening a single-file mount");
    if (auto ok = checkRegular(fd.get(), "what a single-file mount shows"); !ok) return ok;
    return wipeFile(fd.get());
}

Result<void> wipeAndUnlink(int root, const std::string& path) {
    auto f = openViewFile(root, path, O_WRONLY);
    if (!f) return propagate(f);
    if (auto ok = wipeFile(f->fd.get()); !ok) return ok;
    if (::unlinkat(f->parent.get(), f->name.c_str(), 0) != 0) return failErrno("removing " + path);
    return {};
}

// Depth first from a list of the directories still to walk rather than by
// recursion: a target may have 2000 components.
Result<std::size_t> wipeTree(int root, const std::set<std::string>& keep) {
    std::size_t wiped = 0;
    Result<void> result;
    std::vector<std::string> pending{"."};
    while (!pending.empty()) {
        const std::string dir = std::move(pending.back());
        pending.pop_back();
        auto entries = listDirectory(root, dir);
        if (!entries) {
            if (result) result = propagate(entries);
            continue;
        }
        for (const auto& entry : *entries) {
            const std::string path = dir == "." ? entry.name : dir + "/" + entry.name;
            if (entry.directory) {
                pending.push_back(path);
                continue;
            }
            if (keep.count(path)) continue;
            if (auto ok = wipeAndUnlink(root, path); ok)
                ++wiped;
            else if (result)
                result = ok;
        }
    }
    if (!result) return propagate(result);
    return wiped;
}

}  // namespace secretshim::platform
