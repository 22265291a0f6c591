#include "platform/linux/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>

#include "platform/linux/unique_fd.hpp"
#include "platform/linux/view_file.hpp"

namespace secretshim::platform {
namespace {

using mountfs::Bytes;

Result<void> writeAll(int fd, Bytes data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failOnView(fd, "writing a secret file");
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Result<void> setOwnerAndMode(int fd, const mountfs::SecretRef& ref) {
    // A new file already belongs to our fsuid/fsgid (the view's directories
    // have no setgid bit): skip the call when that is the wanted owner, as
    // it is for most references (uid and gid default to 0).
    // (Asked once: geteuid and getegid are syscalls too.)
    static const uid_t ownUid = ::geteuid();
    static const gid_t ownGid = ::getegid();
    if ((ref.uid != ownUid || ref.gid != ownGid) && ::fchown(fd, ref.uid, ref.gid) != 0)
        return failErrno("setting the owner of secret \"" + ref.source + "\"");
    if (::fchmod(fd, ref.mode) != 0)
        return failErrno("setting the mode of secret \"" + ref.source + "\"");
    return {};
}

// 0600 until fchown/fchmod set the reference's own owner and mode.
UniqueFd createSecretFile(int root, const std::string& path) {
    return UniqueFd(::openat(root, path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
}

// Appends each piece to the file, counting what it got.
class FileSink final : public mountfs::PayloadSink {
public:
    explicit FileSink(int fd) : fd_(fd) {}
    Result<void> write(Bytes piece) override {
        if (auto ok = writeAll(fd_, piece); !ok) return ok;
        written_ += piece.size();
        return {};
    }
    std::size_t written() const { return written_; }

private:
    int fd_;
    std::size_t written_ = 0;
};

}  // namespace

// The caps are set when the view is built (tmpfs_view_build.cpp), from its
// files' sizes and count: a source that writes more than it announced, or
// more files than planned, hits them. Whichever is spent is the one hit.
tl::unexpected<Error> failOnView(int fd, const std::string& doing) {
    const int code = errno;
    struct statfs sfs {};
    if (code != ENOSPC || ::fstatfs(fd, &sfs) != 0) return failErrno(code, doing);
    if (sfs.f_ffree == 0)
        return failErrno(code, doing + ": the view's tmpfs reached its inode cap of " + std::to_string(sfs.f_files) +
                                  " files and directories");
    return failErrno(code, doing + ": the view's tmpfs reached its size cap of " +
                              std::to_string(static_cast<unsigned long long>(sfs.f_blocks) * sfs.f_bsize) + " bytes");
}

Result<void> fillSecretFile(int fd, Bytes data, const mountfs::SecretRef& ref) {
    if (auto ok = writeAll(fd, data); !ok)
        return propagate(ok, "secret \"" + ref.source + "\"");
    return setOwnerAndMode(fd, ref);
}

Result<void> writeSecretFile(int root, const std::string& path, Bytes data, const mountfs::SecretRef& ref) {
    UniqueFd fd = createSecretFile(root, path);
    if (!fd) return failOnView(root, "creating the file for secret \"" + ref.source + "\"");
    return fillSecretFile(fd.get(), data, ref);
}

// The agent decrypts through one small locked buffer straight into the
// file: measured against decrypting into a shared mapping of the file, that
// was about 40% less CPU for 1000 x 64 KiB and for 1000 x 64 B: mmap, a
// zeroed page fault per page and munmap cost more than the copy of a
// cache-hot buffer. A source that fails midway is a record that fails its
// tag check once all its unauthenticated plaintext was written.
Result<void> writeSecretFileFrom(int root, const std::string& path, const mountfs::PayloadSource& source,
                                 std::size_t index, const mountfs::SecretRef& ref) {
    UniqueFd fd = createSecretFile(root, path);
    if (!fd) return failOnView(root, "creating the file for secret \"" + ref.source + "\"");
    FileSink sink(fd.get());
    Result<void> ok = source.produce(index, sink);
    if (ok && sink.written() != source.size(index))
        ok = fail("internal error: secret \"" + ref.source + "\" produced " + std::to_string(sink.written()) +
                  " bytes, not " + std::to_string(source.size(index)));
    if (ok) ok = setOwnerAndMode(fd.get(), ref);
    if (!ok) {
        (void)wipeFile(fd.get());
        (void)::unlinkat(root, path.c_str(), 0);
        const auto& e = ok.error();
        // The source's own errors already name the secret (the store's
        // "cannot decrypt" line); a failed write does not.
        if (e.message.find(ref.source) == std::string::npos)
            return tl::unexpected(wrap(e, "secret \"" + ref.source + "\""));
        return ok;
    }
    return {};
}

// Under the unit's UMask=0077 mkdirat() alone made dir/, which /run/secrets
// shows, 0700 and root's, closed to every other user of the container.
Result<void> makeDirectory(int root, const std::string& path, mode_t mode) {
    if (::mkdirat(root, path.c_str(), mode) != 0) return failOnView(root, "creating the view's " + path);
    if (::fchmodat(root, path.c_str(), mode, 0) != 0) return failErrno("setting the mode of the view's " + path);
    return {};
}

}  // namespace secretshim::platform
