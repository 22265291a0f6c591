// Flushing a view when its container exits (or its build failed) and
// revoking one entry: every file is zeroed before it is removed, so a
// process that still has it open, or a mount that pins it, sees zeros, not
// the secret.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "platform/linux/tmpfs_view.hpp"
#include "platform/linux/two_threads.hpp"
#include "platform/linux/view_file.hpp"
#include "platform/linux/view_root.hpp"

namespace secretshim::platform {

TmpfsView::~TmpfsView() {
    if (!kept_) (void)flush();
}

Result<void> TmpfsView::flush() {
    if (flushed_) return {};
    releaseMountSources();
    Result<void> result = root_ ? root_->flush(layout_) : Result<void>();
    flushed_ = true;
    return result;
}

// A view of kTwoThreads files or more is wiped on two threads (the zeroing
// of each file is independent; only the unlinks share a lock).
Result<void> BuiltRoot::flush(const mountfs::ViewLayout& layout) {
    constexpr std::size_t kTwoThreads = 64;
    const auto wipe = [&](std::size_t from, std::size_t to) -> Result<void> {
        Result<void> result;
        for (std::size_t i = from; i < to; ++i) {
            const auto& entry = layout.entries[i];
            Result<void> ok = wipeAndUnlink(fd(), entry.file);
            if (!ok && result)
                result = propagate(ok, "flushing secret \"" + entry.ref.source + "\"");
        }
        return result;
    };
    const std::size_t count = layout.entries.size(), half = count / 2;
    Result<void> result = count >= kTwoThreads
        ? onTwoThreads([&] { return wipe(0, half); }, [&] { return wipe(half, count); })
        : wipe(0, count);
    (void)::unlinkat(fd(), kUpdateTemp, 0);
    fd_.reset();
    return result;
}

// The container's tree, as it was mounted at our targets: nothing outside
// it is reached, nothing in it waited on (view_file.hpp).
Result<void> AdoptedRoot::flush(const mountfs::ViewLayout& layout) {
    Result<void> result;
    for (std::size_t i = 0; i < layout.entries.size(); ++i) {
        const auto& entry = layout.entries[i];
        Result<void> ok = entry.inDirectory && fd_ ? wipeAndUnlink(fd(), pathOf(entry)) : wipeSingleFile(i, entry);
        if (!ok && result)
            result = propagate(ok, "flushing secret \"" + entry.ref.source + "\"");
    }
    if (fd_) (void)::unlinkat(fd(), kAdoptedTemp, 0);  // left by a crash
    fd_.reset();
    files_.clear();
    return result;
}

Result<void> AdoptedRoot::wipeSingleFile(std::size_t index, const mountfs::ViewEntry& entry) const {
    if (index >= files_.size() || !files_[index]) return fail("opening " + entry.ref.target + ": not re-adopted");
    return wipeMounted(files_[index].get());
}

Result<void> BuiltRoot::revoke(std::size_t, const mountfs::ViewEntry& entry) {
    return wipeAndUnlink(fd(), entry.file);
}

Result<void> AdoptedRoot::revoke(std::size_t index, const mountfs::ViewEntry& entry) {
    Result<void> ok = entry.inDirectory ? wipeAndUnlink(fd(), pathOf(entry))
                      : index < files_.size() && files_[index] ? wipeMounted(files_[index].get())
                                                                : fail("no handle on " + entry.ref.target);
    if (ok && index < files_.size()) files_.erase(files_.begin() + static_cast<std::ptrdiff_t>(index));
    return ok;
}

}  // namespace secretshim::platform
