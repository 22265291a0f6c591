#include "plugin/store/private_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace secretshim::plugin {
namespace {

tl::unexpected<Error> refuse(int code, std::string message) {
    return failWith(code, std::move(message));
}

std::string octal(mode_t mode) {
    char text[16];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

// A file or directory someone else can read leaks the node key or the
// names of secrets; one someone else owns could be swapped under us.
Result<void> checkOwnerOnly(const struct stat& st, const std::string& label, mode_t expected) {
    static const uid_t euid = ::geteuid();  // asked once: a syscall per record otherwise
    if (st.st_uid != euid)
        return refuse(EPERM, label + " is owned by uid " + std::to_string(st.st_uid) +
                                 ", expected uid " + std::to_string(euid));
    if ((st.st_mode & 077) != 0)
        return refuse(EPERM, label + " is accessible by group or others (mode " + octal(st.st_mode) +
                                 "); expected " + octal(expected));
    return {};
}

}  // namespace

Result<UniqueFd> openOrCreateDir(int dirFd, const std::string& name, const std::string& label,
                                 DirAccess access) {
    if (::mkdirat(dirFd, name.c_str(), 0700) != 0 && errno != EEXIST)
        return failErrno("creating " + label);
    UniqueFd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        // With O_DIRECTORY, Linux reports a symlink as ENOTDIR, not ELOOP.
        struct stat st {};
        const int openError = errno;
        if (::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
            return refuse(ELOOP, label + " is a symlink; refusing it");
        if (openError == ENOTDIR) return refuse(ENOTDIR, label + " is not a directory");
        return failErrno(openError, "opening " + label);
    }
    if (access == DirAccess::ownerOnly) {
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return failErrno("inspecting " + label);
        if (auto ok = checkOwnerOnly(st, label, 0700); !ok) return propagate(ok);
    }
    return fd;
}

Result<OpenedFile> openPrivateFile(int dirFd, const std::string& name, const std::string& label) {
    // lstat first: opening a FIFO or a device could block or act on it.
    struct stat st {};
    if (::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return refuse(ENOENT, label + " does not exist");
        return failErrno("inspecting " + label);
    }
    if (S_ISLNK(st.st_mode)) return refuse(ELOOP, label + " is a symlink; refusing it");
    if (!S_ISREG(st.st_mode)) return refuse(EINVAL, label + " is not a regular file");
    if (auto ok = checkOwnerOnly(st, label, 0600); !ok) return propagate(ok);

    UniqueFd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) {
        if (errno == ELOOP) return refuse(ELOOP, label + " is a symlink; refusing it");
        if (errno == ENOENT) return refuse(ENOENT, label + " does not exist");
        return failErrno("opening " + label);
    }
    // The checks above were on the name; make sure they hold for what we opened.
    struct stat opened {};
    if (::fstat(fd.get(), &opened) != 0) return failErrno("inspecting " + label);
    if (opened.st_dev != st.st_dev || opened.st_ino != st.st_ino)
        return refuse(EAGAIN, label + " was replaced while it was being opened");
    return OpenedFile{std::move(fd), static_cast<std::uint64_t>(opened.st_size)};
}

Result<void> checkPrivateFile(const std::string& path, const std::string& label) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return refuse(ENOENT, label + " does not exist");
        return failErrno("inspecting " + label);
    }
    if (!S_ISREG(st.st_mode)) return refuse(EINVAL, label + " is not a regular file");
    return checkOwnerOnly(st, label, 0600);
}

Result<void> readExact(int fd, std::span<unsigned char> out, const std::string& label) {
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("reading " + label);
        if (n == 0) return refuse(EIO, label + " ended early (truncated while being read)");
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Result<std::string> readPrivateText(int dirFd, const std::string& name, const std::string& label,
                                    std::uint64_t maxSize) {
    auto file = openPrivateFile(dirFd, name, label);
    if (!file) return propagate(file);
    if (file->size > maxSize) return fail(label + " is too large");
    std::string text(file->size, '\0');
    if (auto ok = readExact(file->fd.get(), {reinterpret_cast<unsigned char*>(text.data()), text.size()}, label); !ok)
        return propagate(ok);
    return text;
}

}  // namespace secretshim::plugin
