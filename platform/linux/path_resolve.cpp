#include "platform/linux/path_resolve.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "platform/linux/mount_api.hpp"

namespace secretshim::platform {
namespace {

constexpr std::uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
// For what we just created ourselves: no symlink may appear there.
constexpr std::uint64_t kOwnOnly = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

std::vector<std::string> splitPath(std::string_view path) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start < path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        if (end > start) parts.emplace_back(path.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

std::string joinPath(const std::vector<std::string>& parts, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        if (i) out += '/';
        out += parts[i];
    }
    return out;
}

const char* typeName(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFDIR: return "a directory";
    case S_IFREG: return "a regular file";
    case S_IFLNK: return "a symbolic link";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "of an unknown type";
    }
}

Result<void> mayCreateIn(int dirfd, int rootfd, bool rootReadOnly, const std::string& shown) {
    if (!rootReadOnly) return {};
    struct statx dir {}, root {};
    if (::statx(dirfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &dir) != 0 ||
        ::statx(rootfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &root) != 0)
        return failErrno("inspecting the mount of " + shown + " in the container");
    if (dir.stx_mnt_id == root.stx_mnt_id)
        return fail("creating " + shown +
                    " in the container: the root filesystem is read-only (use a target under /run/secrets, "
                    "or a mount point the image already has)");
    return {};
}

// Opens (creating if missing) the directory made of parts[0..count).
Result<UniqueFd> openDirectories(int rootfd, const std::vector<std::string>& parts,
                                 std::size_t count, bool rootReadOnly) {
    UniqueFd cur(sysOpenat2(rootfd, ".", O_PATH | O_DIRECTORY, kOwnOnly));
    if (!cur) return failErrno("opening the container's root");
    bool created = false;
    for (std::size_t i = 0; i < count; ++i) {
        const std::string shown = "/" + joinPath(parts, i + 1);
        if (!created) {
            UniqueFd next(sysOpenat2(rootfd, joinPath(parts, i + 1).c_str(), O_PATH | O_DIRECTORY,
                                     kInRoot));
            if (next) {
                cur = std::move(next);
                continue;
            }
            if (errno != ENOENT) return failErrno("resolving " + shown + " in the container");
        }
        if (auto ok = mayCreateIn(cur.get(), rootfd, rootReadOnly, shown); !ok) return propagate(ok);
        if (::mkdirat(cur.get(), parts[i].c_str(), 0755) != 0) {
            if (errno == EEXIST && !created)
                return fail(shown + " in the container is a dangling symbolic link");
            if (errno != EEXIST) return failErrno("creating " + shown + " in the container");
        }
        UniqueFd next(sysOpenat2(cur.get(), parts[i].c_str(), O_PATH | O_DIRECTORY, kOwnOnly));
        if (!next) return failErrno("opening " + shown + " in the container");
        cur = std::move(next);
        created = true;
    }
    return cur;
}

bool sameInode(int a, int b) {
    struct stat sa {}, sb {};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

}  // namespace

Result<UniqueFd> openMountPoint(int rootfd, std::string_view target, MountPointKind kind, bool rootReadOnly) {
    const std::vector<std::string> parts = splitPath(target);
    if (parts.empty()) return fail("target \"" + std::string(target) + "\" is the container's root");
    const std::string relative = joinPath(parts, parts.size());
    const std::string shown = "/" + relative;
    const bool wantDir = kind == MountPointKind::Directory;

    UniqueFd fd(sysOpenat2(rootfd, relative.c_str(), O_PATH, kInRoot));
    if (!fd) {
        if (errno != ENOENT) return failErrno("resolving " + shown + " in the container");
        auto parent = openDirectories(rootfd, parts, parts.size() - 1, rootReadOnly);
        if (!parent) return propagate(parent);
        if (auto ok = mayCreateIn(parent->get(), rootfd, rootReadOnly, shown); !ok) return propagate(ok);
        const char* name = parts.back().c_str();
        if (wantDir) {
            if (::mkdirat(parent->get(), name, 0755) != 0)
                return errno == EEXIST
                           ? fail(shown + " in the container is a dangling symbolic link")
                           : failErrno("creating " + shown + " in the container");
            fd.reset(sysOpenat2(parent->get(), name, O_PATH | O_DIRECTORY, kOwnOnly));
        } else {
            // O_EXCL never follows a symlink, so a planted one fails here.
            fd.reset(::openat(parent->get(), name,
                              O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444));
            if (!fd && errno == EEXIST)
                return fail(shown + " in the container is a dangling symbolic link");
        }
        if (!fd) return failErrno("creating " + shown + " in the container");
    }

    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return failErrno("inspecting " + shown + " in the container");
    if (wantDir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return fail(shown + " in the container is " + typeName(st.st_mode) + ", not " +
                    (wantDir ? "a directory" : "a regular file"));
    if (wantDir && sameInode(fd.get(), rootfd))
        return fail(shown + " in the container resolves to the container's root");
    return fd;
}

}  // namespace secretshim::platform
