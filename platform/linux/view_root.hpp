// How a TmpfsView reaches its files, by the kind of its root (internal to
// platform/linux). A view the agent built holds the writable root of its
// tmpfs: every file has its path in it (ViewEntry::file). A view re-adopted
// from a running container's mounts holds writable clones of what the
// container shows, the /run/secrets mount (dir/ itself) and each
// single-file mount, but not the tmpfs's root. The view's lifecycles (live
// edits in tmpfs_view_live.cpp, flush in tmpfs_view_flush.cpp) ask the root
// for what differs.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "mountfs/secrets_view.hpp"
#include "platform/linux/attach.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

// In the tmpfs root, next to dir/ and file/: no target's file can be named so.
inline constexpr const char* kUpdateTemp = ".update";
// A re-adopted view reaches only dir/: its new files are linked there under
// this name, complete (owner, mode, content), for the moment before the
// rename that puts them in place.
inline constexpr const char* kAdoptedTemp = ".secretshim-update";

// An attach or a rebind, run by a helper in the container's mount
// namespace: `fd` is the read-only mount to show.
using LiveAct = std::function<Result<void>(int fd, const AfterEnter& afterEnter)>;

class ViewRoot {
public:
    explicit ViewRoot(UniqueFd fd) : fd_(std::move(fd)) {}
    virtual ~ViewRoot() = default;
    ViewRoot(const ViewRoot&) = delete;
    ViewRoot& operator=(const ViewRoot&) = delete;

    // What new files are written through: the tmpfs's root, or the clone
    // of dir/; -1 once flushed, or for a re-adopted view without a
    // /run/secrets mount.
    int fd() const { return fd_.get(); }
    // The tmpfs's writable root, for the service manager's fd store; -1 if
    // the view has no hold on it.
    virtual int storable() const = 0;
    // The path below fd() of an entry's file in dir/.
    virtual std::string pathOf(const mountfs::ViewEntry& entry) const = 0;

    // Live edits (tmpfs_view_live.cpp). `layout` is the view's as it is.
    // Creates the directories a new entry needs (`planned`: its own layout).
    virtual Result<void> makeDirectories(const mountfs::ViewLayout& planned) = 0;
    // Writes a new file not yet shown at any target; its path below fd().
    virtual Result<std::string> stage(mountfs::Bytes payload, const mountfs::SecretRef& ref,
                                      const mountfs::ViewLayout& layout) = 0;
    // Writes the file of a new single-file entry; its path below fd(), for
    // showFile().
    virtual Result<std::string> writeNewFile(const mountfs::ViewEntry& entry, mountfs::Bytes payload,
                                             const mountfs::ViewLayout& layout) = 0;
    // Shows the file at `path` (from stage() or writeNewFile()) at
    // single-file entry `index`'s target through `act`, run in the
    // container with the container's root ids `uid`/`gid` (0: the agent's).
    // `adding`: the entry is new, and a failure wipes its file; else the
    // file becomes the entry's before `act` runs.
    virtual Result<void> showFile(std::size_t index, const mountfs::ViewEntry& entry, const std::string& path,
                                  bool adding, const mountfs::ContainerHandle& container, uid_t uid, gid_t gid,
                                  const LiveAct& act) = 0;
    // Which file single-file entry `index` shows (what proves a mount is ours).
    virtual Result<FileIdentity> identity(std::size_t index, const mountfs::ViewEntry& entry) const = 0;

    // Zeroes and removes entry `index`'s file, then forgets the entry.
    virtual Result<void> revoke(std::size_t index, const mountfs::ViewEntry& entry) = 0;
    // Zeroes and removes every file of `layout`, then lets go of the tmpfs
    // (tmpfs_view_flush.cpp).
    virtual Result<void> flush(const mountfs::ViewLayout& layout) = 0;

protected:
    UniqueFd fd_;
};

// The root of the tmpfs the agent built (or took back from the fd store).
class BuiltRoot final : public ViewRoot {
public:
    explicit BuiltRoot(UniqueFd root) : ViewRoot(std::move(root)) {}
    // The staging helper's clone of the root (makeReadOnlyClonesStaged).
    void replace(UniqueFd root) { fd_ = std::move(root); }

    int storable() const override { return fd_.get(); }
    std::string pathOf(const mountfs::ViewEntry& entry) const override { return entry.file; }
    Result<void> makeDirectories(const mountfs::ViewLayout& planned) override;
    Result<std::string> stage(mountfs::Bytes payload, const mountfs::SecretRef& ref,
                              const mountfs::ViewLayout& layout) override;
    Result<std::string> writeNewFile(const mountfs::ViewEntry& entry, mountfs::Bytes payload,
                                     const mountfs::ViewLayout& layout) override;
    Result<void> showFile(std::size_t index, const mountfs::ViewEntry& entry, const std::string& path, bool adding,
                          const mountfs::ContainerHandle& container, uid_t uid, gid_t gid,
                          const LiveAct& act) override;
    Result<FileIdentity> identity(std::size_t index, const mountfs::ViewEntry& entry) const override;
    Result<void> revoke(std::size_t index, const mountfs::ViewEntry& entry) override;
    Result<void> flush(const mountfs::ViewLayout& layout) override;
};

// What a view re-adopted from the container's mounts holds: fd() is a
// writable clone of dir/ (if the container has a /run/secrets mount), and
// each single-file entry has a writable clone of its own mount. A new file
// is made unnamed in dir/ (O_TMPFILE), complete before it gets a name.
class AdoptedRoot final : public ViewRoot {
public:
    // `files`: by entry index, a writable clone for each single-file entry.
    AdoptedRoot(UniqueFd dir, std::vector<UniqueFd> files) : ViewRoot(std::move(dir)), files_(std::move(files)) {}

    int storable() const override { return -1; }
    std::string pathOf(const mountfs::ViewEntry& entry) const override { return mountfs::pathInArea(entry); }
    Result<void> makeDirectories(const mountfs::ViewLayout& planned) override;
    Result<std::string> stage(mountfs::Bytes payload, const mountfs::SecretRef& ref,
                              const mountfs::ViewLayout& layout) override;
    Result<std::string> writeNewFile(const mountfs::ViewEntry& entry, mountfs::Bytes payload,
                                     const mountfs::ViewLayout& layout) override;
    Result<void> showFile(std::size_t index, const mountfs::ViewEntry& entry, const std::string& path, bool adding,
                          const mountfs::ContainerHandle& container, uid_t uid, gid_t gid,
                          const LiveAct& act) override;
    Result<FileIdentity> identity(std::size_t index, const mountfs::ViewEntry& entry) const override;
    Result<void> revoke(std::size_t index, const mountfs::ViewEntry& entry) override;
    Result<void> flush(const mountfs::ViewLayout& layout) override;

private:
    Result<void> wipeSingleFile(std::size_t index, const mountfs::ViewEntry& entry) const;

    std::vector<UniqueFd> files_;  // by entry index; invalid for dir/ entries
};

// Runs `act` in a helper inside the container's mount namespace
// (tmpfs_view_live.cpp). `source` is a read-only mount to show; or, with
// `clonePath` (a file below `root`), the helper clones that file there and
// brings back a writable clone of it.
Result<UniqueFd> runInContainer(const mountfs::ContainerHandle& container, int source, int root,
                                const std::string& clonePath, uid_t uid, gid_t gid, const LiveAct& act);

}  // namespace secretshim::platform
