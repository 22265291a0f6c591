#include "platform/windows/symlink_view.hpp"

#include <optional>

#include "mountfs/windows_target.hpp"
#include "platform/windows/container_path.hpp"
#include "platform/windows/utf16.hpp"

namespace secretshim::platform {
namespace {

using mountfs::Bytes;

std::string quote(const std::string& s) { return "\"" + s + "\""; }

// Keeps the first error of a sequence that goes on after failures.
class FirstError {
public:
    void note(const Result<void>& result) {
        if (!result && !error_) error_ = result.error();
    }
    Result<void> result() const {
        if (error_) return tl::unexpected(*error_);
        return {};
    }

private:
    std::optional<Error> error_;
};

}  // namespace

Result<std::unique_ptr<SymlinkView>> SymlinkView::make(mountfs::ViewLayout layout,
                                                        const mountfs::ViewOptions& options, WinFs& fs) {
    std::vector<mountfs::SecretRef> refs;
    for (const auto& entry : layout.entries) refs.push_back(entry.ref);
    auto planned = mountfs::planWindowsView(refs);
    if (!planned) return propagate(planned);
    bool same = layout.directories.empty() && planned->entries.size() == layout.entries.size();
    for (std::size_t i = 0; same && i < layout.entries.size(); ++i)
        same = layout.entries[i].file == planned->entries[i].file && !layout.entries[i].inDirectory;
    if (!same) return fail("internal error: the layout was not planned for Windows (planWindowsView)");

    auto descriptor = SecurityDescriptor::adminsAndSystemOnly();
    if (!descriptor) return propagate(descriptor);
    std::unique_ptr<SymlinkView> view(
        new SymlinkView(fs, std::move(layout), std::move(*descriptor), options.maxPayload));
    view->linked_.assign(view->layout_.entries.size(), false);
    return view;
}

Result<std::unique_ptr<SymlinkView>> SymlinkView::build(mountfs::ViewLayout layout,
                                                         const std::vector<Bytes>& payloads,
                                                         const mountfs::ViewOptions& options, WinFs& fs) {
    if (payloads.size() != layout.entries.size())
        return fail("internal error: " + std::to_string(payloads.size()) + " payloads for " +
                    std::to_string(layout.entries.size()) + " references");
    for (std::size_t i = 0; i < payloads.size(); ++i)
        if (auto ok = mountfs::checkPayloadSize(layout.entries[i].ref.source, payloads[i].size(),
                                                options.maxPayload);
            !ok)
            return propagate(ok);
    auto view = make(std::move(layout), options, fs);
    if (!view) return view;
    for (Bytes payload : payloads) (*view)->payloads_.emplace_back(payload);
    return view;
}

Result<std::unique_ptr<SymlinkView>> SymlinkView::adopt(mountfs::ViewLayout layout,
                                                         const mountfs::ContainerHandle& container,
                                                         const mountfs::ViewOptions& options, WinFs& fs) {
    auto root = hostRoot(container.rootfs);
    if (!root) return propagate(root);
    auto view = make(std::move(layout), options, fs);
    if (!view) return view;
    (*view)->root_ = std::move(*root);
    (*view)->attached_ = true;
    (*view)->ownsInternalDir_ = true;
    (*view)->linked_.assign((*view)->layout_.entries.size(), true);
    return view;
}

Result<void> SymlinkView::attach(const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (attached_) return fail("the secrets view is already attached");
    auto root = hostRoot(container.rootfs);
    if (!root) return propagate(root);
    root_ = std::move(*root);
    auto ok = attachAll();
    // No handle is kept between operations: one would keep the container's
    // volume busy when the runtime tears it down.
    pins_.clear();
    // The container's files are the only copy now (or, on failure, none).
    for (WipedBytes& payload : payloads_) payload.wipe();
    if (!ok) {
        (void)flush();  // removes only what this attach made; a later flush() retries
        flushed_ = true;
        return propagate(ok, "attaching secrets");
    }
    attached_ = true;
    return {};
}

Result<void> SymlinkView::attachAll() {
    if (auto ok = makeInternalDir(); !ok) return ok;
    const std::wstring dir = *hostPath(root_, mountfs::kWindowsInternalDir);
    for (std::size_t i = 0; i < layout_.entries.size(); ++i) {
        const auto& entry = layout_.entries[i];
        auto ok = fs_.createFile(dir + L"\\" + std::to_wstring(i), payloads_[i].bytes(), &descriptor_);
        if (!ok) return propagate(ok, "secret " + quote(entry.ref.source));
    }
    for (std::size_t i = 0; i < layout_.entries.size(); ++i)
        if (auto ok = makeLink(i); !ok) return ok;
    return {};
}

Result<void> SymlinkView::makeInternalDir() {
    const std::string shown(mountfs::kWindowsInternalDir);
    auto resolved = resolveInRoot(fs_, root_, mountfs::kWindowsInternalDir, true);
    if (!resolved) return propagate(resolved);
    // Held open from the check on: what is checked is what is used.
    auto node = fs_.openNode(resolved->host, true);
    if (!node) return propagate(node, shown);
    if (!node->exists) {
        // Created with its DACL in one call: it is never readable by others.
        if (auto ok = fs_.createDirectory(resolved->host, &descriptor_); !ok)
            return propagate(ok, "creating " + shown);
        node = fs_.openNode(resolved->host, true);
        if (!node) return propagate(node, shown);
        if (!node->exists || node->reparsePoint || !node->directory)
            return fail(shown + " was replaced while it was being created");
    } else if (node->reparsePoint) {
        return fail(shown + " is a reparse point (a link or junction in the image); refusing to follow it");
    } else if (!node->directory) {
        return fail(shown + " is not a directory (a file in the image)");
    } else {
        // An image may ship the empty directory (a committed container);
        // anything in it is not ours to overwrite or to wipe.
        auto entries = fs_.listDirectory(resolved->host);
        if (!entries) return propagate(entries, shown);
        if (!entries->empty()) return fail(shown + " is not empty (it comes with the image)");
        if (auto ok = fs_.protectDirectory(resolved->host, descriptor_); !ok)
            return propagate(ok, shown);
    }
    ownsInternalDir_ = true;
    pins_ = std::move(resolved->pins);
    pins_.push_back(std::move(node->pin));
    return {};
}

Result<void> SymlinkView::makeLink(std::size_t index) {
    const auto& entry = layout_.entries[index];
    const std::string context = "secret " + quote(entry.ref.source) + " at " + quote(entry.ref.target);
    auto resolved = resolveInRoot(fs_, root_, entry.ref.target, true);
    if (!resolved) return propagate(resolved, context);
    auto node = fs_.openNode(resolved->host, false);
    if (!node) return propagate(node, context);
    if (node->exists) return fail(context + ": the target already exists in the image");
    auto text = toUtf16(mountfs::windowsLinkText(entry.ref.target, entry.file));
    if (!text) return propagate(text, context);
    auto ok = fs_.createSymlink(resolved->host, *text);
    if (!ok) return propagate(ok, context);
    linked_[index] = true;
    return {};
}

Result<void> SymlinkView::update(std::size_t index, Bytes payload, const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (!attached_) return fail("the secrets view is not attached");
    if (index >= layout_.entries.size())
        return fail("internal error: no reference " + std::to_string(index) + " in the view");
    const auto& entry = layout_.entries[index];
    if (auto ok = mountfs::checkPayloadSize(entry.ref.source, payload.size(), maxPayload_); !ok) return ok;
    if (!container.rootfs.empty()) {
        auto root = hostRoot(container.rootfs);
        if (!root || *root != root_) return fail("internal error: an update for another container's root");
    }
    const std::string context = "updating secret " + quote(entry.ref.source);
    const std::string shown(mountfs::kWindowsInternalDir);

    auto dir = resolveInRoot(fs_, root_, mountfs::kWindowsInternalDir, false);
    if (!dir) return propagate(dir, context);
    auto node = fs_.openNode(dir->host, true);
    if (!node) return propagate(node, context);
    if (!dir->parentsExist || !node->exists) return fail(context + ": " + shown + " is gone");
    if (node->reparsePoint || !node->directory)
        return fail(context + ": " + shown + " was replaced by a reparse point or a file");

    const std::wstring file = dir->host + L"\\" + std::to_wstring(index);
    const std::wstring temp = file + L".new";
    const std::wstring old = file + L".old";
    // Left by a crash or a failed update. "<n>.old" may still name the live
    // file (a replace that failed): its name goes, its bytes are not zeroed.
    if (auto ok = removeLeftover(temp, true); !ok) return propagate(ok, context);
    if (auto ok = removeLeftover(old, false); !ok) return propagate(ok, context);
    if (auto ok = fs_.createFile(temp, payload, &descriptor_); !ok)
        return propagate(ok, context);

    // A second name for the old bytes, to zero them once the new file is in
    // place. Without it (hard links unsupported) the old bytes are only freed.
    auto current = fs_.openNode(file, false);
    const bool keptOld = current && current->exists && !current->reparsePoint && !current->directory &&
                         fs_.createHardLink(old, file).has_value();
    if (auto ok = fs_.replaceFile(temp, file); !ok) {
        (void)removeLeftover(temp, true);
        if (keptOld) (void)fs_.deleteFile(old);
        return propagate(ok, context);
    }
    if (keptOld) {
        // Only when no one reads them: a reader that opened the old file just
        // before the swap must read the whole old value, not zeros. The new
        // value is in place either way, so a failure here fails nothing.
        (void)fs_.wipeFile(old, true);
        (void)fs_.deleteFile(old);
    }
    return {};
}

Result<void> SymlinkView::removeLeftover(const std::wstring& path, bool wipe) {
    auto node = fs_.openNode(path, false);
    if (!node) return propagate(node);
    if (!node->exists) return {};
    if (node->reparsePoint)
        return node->directory ? fs_.removeDirectory(path) : fs_.deleteFile(path);
    if (node->directory) return fail("\"" + toUtf8(path) + "\" is a directory secretshim did not create");
    if (wipe)
        if (auto wiped = fs_.wipeFile(path, false); !wiped) return propagate(wiped);
    return fs_.deleteFile(path);
}

Result<void> SymlinkView::flush() {
    for (WipedBytes& payload : payloads_) payload.wipe();
    if (root_.empty()) {  // never attached: nothing was written
        flushed_ = true;
        return {};
    }
    FirstError first;
    // The secrets first, the links (which hold only a path) after.
    if (ownsInternalDir_) first.note(wipeInternalDir());
    for (std::size_t i = 0; i < layout_.entries.size(); ++i)
        if (linked_[i]) first.note(removeLink(i));
    flushed_ = true;
    attached_ = false;
    return first.result();
}

Result<void> SymlinkView::wipeInternalDir() {
    const std::string shown(mountfs::kWindowsInternalDir);
    const std::string context = "wiping " + shown;
    auto dir = resolveInRoot(fs_, root_, mountfs::kWindowsInternalDir, false);
    if (!dir) return propagate(dir, context);
    if (!dir->parentsExist) return {};
    auto node = fs_.openNode(dir->host, false);
    if (!node) return propagate(node, context);
    if (!node->exists) return {};
    if (node->reparsePoint || !node->directory)
        return fail(context + ": it was replaced by a reparse point or a file");
    auto entries = fs_.listDirectory(dir->host);
    if (!entries) return propagate(entries, context);
    // Every file in it: ours ("<n>", "<n>.new", "<n>.old" left by a crash)
    // or copies made inside the container; links are removed, not followed.
    FirstError first;
    for (const DirEntry& entry : *entries)
        first.note(removeLeftover(dir->host + L"\\" + entry.name, true));
    if (auto ok = first.result(); !ok) return propagate(ok, context);
    pins_.clear();  // our own handle on the directory would keep it from being removed
    if (auto ok = fs_.removeDirectory(dir->host); !ok) return propagate(ok, context);
    return {};
}

Result<void> SymlinkView::removeLink(std::size_t index) {
    const auto& entry = layout_.entries[index];
    auto resolved = resolveInRoot(fs_, root_, entry.ref.target, false);
    // A parent that is gone or became a link or junction (the container
    // may change its own filesystem): nothing is followed to reach the
    // link, which holds only a path and goes with the container.
    if (!resolved || !resolved->parentsExist) return {};
    auto node = fs_.openNode(resolved->host, false);
    if (!node) return propagate(node, "removing the link at " + quote(entry.ref.target));
    // Only a file link is ours; a file or directory the container put there
    // in its place stays.
    if (!node->exists || !node->reparsePoint || node->directory) return {};
    if (auto ok = fs_.deleteFile(resolved->host); !ok)
        return propagate(ok, "removing the link at " + quote(entry.ref.target));
    return {};
}

}  // namespace secretshim::platform
