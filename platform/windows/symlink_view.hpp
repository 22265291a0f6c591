// The Windows secrets view, laid out as Docker lays out a Windows
// container's secrets, inside the container's own filesystem:
//   C:\ProgramData\Docker\internal\secrets\      protected DACL: Administrators, SYSTEM
//   C:\ProgramData\Docker\internal\secrets\<n>   reference n's bytes
//   <target of n>                                symbolic link to that file
// Nothing of the image is followed: every existing component on the way is
// checked not to be a reparse point and held open while it is used.
//
// Unlike the Linux tmpfs, these files are on the container's disk: they
// are overwritten with zeros before they are deleted, but the plaintext
// does reach a disk (as it does with Docker on Windows).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mountfs/secrets_view.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "platform/windows/unique_handle.hpp"
#include "platform/windows/wiped_bytes.hpp"
#include "platform/windows/win_fs.hpp"

namespace secretshim::platform {

class SymlinkView final {
public:
    // `layout` must be what mountfs::planWindowsView() returns. The payloads
    // are copied and kept (then wiped) only until attach(). `fs` must
    // outlive the view.
    static Result<std::unique_ptr<SymlinkView>> build(mountfs::ViewLayout layout,
                                                       const std::vector<mountfs::Bytes>& payloads,
                                                       const mountfs::ViewOptions& options, WinFs& fs);
    // The view of a container attached earlier (by an agent that has since
    // restarted): it can be updated and flushed, not attached.
    static Result<std::unique_ptr<SymlinkView>> adopt(mountfs::ViewLayout layout,
                                                       const mountfs::ContainerHandle& container,
                                                       const mountfs::ViewOptions& options, WinFs& fs);
    // Releases handles and wipes payload copies. It does not flush: the
    // container keeps its secrets until flush() (as on Linux, where the
    // mounts outlive the agent's descriptors).
    ~SymlinkView() = default;
    SymlinkView(const SymlinkView&) = delete;
    SymlinkView& operator=(const SymlinkView&) = delete;

    const mountfs::ViewLayout& layout() const { return layout_; }
    // Writes every file, then creates every link. On failure, removes what
    // it wrote and the view is spent (flushed).
    Result<void> attach(const mountfs::ContainerHandle& container);
    // Writes "<n>.new" and renames it over "<n>": readers open the old file
    // or the new one. The old bytes are zeroed unless a reader still has
    // them open.
    Result<void> update(std::size_t index, mountfs::Bytes payload,
                        const mountfs::ContainerHandle& container);
    // Zeroes and deletes every file in the internal directory, removes it and
    // the links. Idempotent; after a crash, adopt() then flush().
    Result<void> flush();

private:
    SymlinkView(WinFs& fs, mountfs::ViewLayout layout, SecurityDescriptor descriptor, std::size_t maxPayload)
        : fs_(fs), layout_(std::move(layout)), descriptor_(std::move(descriptor)), maxPayload_(maxPayload) {}
    static Result<std::unique_ptr<SymlinkView>> make(mountfs::ViewLayout layout,
                                                      const mountfs::ViewOptions& options, WinFs& fs);
    Result<void> attachAll();
    Result<void> makeInternalDir();
    Result<void> makeLink(std::size_t index);
    Result<void> wipeInternalDir();
    Result<void> removeLink(std::size_t index);
    // Removes a file left in the internal directory (zeroed first when
    // `wipe`), or a link itself.
    Result<void> removeLeftover(const std::wstring& path, bool wipe);

    WinFs& fs_;
    mountfs::ViewLayout layout_;
    SecurityDescriptor descriptor_;
    std::size_t maxPayload_;
    std::vector<WipedBytes> payloads_;  // until attach()
    std::wstring root_;                 // the container's root, once attach() began
    bool attached_ = false;
    bool flushed_ = false;
    bool ownsInternalDir_ = false;      // created (or found empty) by this view
    std::vector<bool> linked_;          // by entry: a link this view made
    std::vector<UniqueHandle> pins_;    // the internal directory and its parents during attach()
};

}  // namespace secretshim::platform
