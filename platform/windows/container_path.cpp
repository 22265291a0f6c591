#include "platform/windows/container_path.hpp"

#include <algorithm>

#include "mountfs/windows_target.hpp"
#include "platform/windows/utf16.hpp"

namespace secretshim::platform {
namespace {

bool isLetter(wchar_t c) { return (c >= L'a' && c <= L'z') || (c >= L'A' && c <= L'Z'); }

}  // namespace

Result<std::wstring> hostRoot(std::string_view rootfs) {
    auto wide = toUtf16(rootfs);
    if (!wide) return propagate(wide, "container root");
    std::wstring root = std::move(*wide);
    const std::wstring verbatim = L"\\\\?\\";
    if (root.rfind(verbatim, 0) != 0) {
        std::replace(root.begin(), root.end(), L'/', L'\\');
        if (root.size() < 3 || !isLetter(root[0]) || root[1] != L':' || root[2] != L'\\')
            return fail("container root \"" + std::string(rootfs) +
                        "\" is not an absolute Windows path (\"C:\\...\" or \"\\\\?\\...\")");
        root = verbatim + root;
    }
    while (root.size() > verbatim.size() && root.back() == L'\\') root.pop_back();
    if (root.size() <= verbatim.size()) return fail("container root \"" + std::string(rootfs) + "\" is empty");
    // "\\?\" turns off Win32's normalization: "." and ".." would be names.
    for (std::size_t start = verbatim.size(); start <= root.size();) {
        const std::size_t end = std::min(root.find(L'\\', start), root.size());
        const std::wstring_view part = std::wstring_view(root).substr(start, end - start);
        if (part == L"." || part == L".." || part.empty())
            return fail("container root \"" + std::string(rootfs) + "\" is not clean");
        start = end + 1;
    }
    return root;
}

Result<std::wstring> hostPath(const std::wstring& root, std::string_view containerPath) {
    std::wstring path = root;
    for (const std::string& part : mountfs::windowsPathComponents(containerPath)) {
        auto wide = toUtf16(part);
        if (!wide) return propagate(wide, std::string(containerPath));
        path += L'\\';
        path += *wide;
    }
    return path;
}

Result<ResolvedPath> resolveInRoot(WinFs& fs, const std::wstring& root, std::string_view containerPath,
                                   bool createParents) {
    const std::vector<std::string> parts = mountfs::windowsPathComponents(containerPath);
    if (parts.empty()) return fail("\"" + std::string(containerPath) + "\" names no file");
    ResolvedPath resolved;

    // The root itself is the runtime's (a volume's root is a mount point,
    // itself a reparse point): only its kind is checked.
    auto top = fs.openNode(root + L"\\", true);
    if (!top) return propagate(top, "the container's root");
    if (!top->exists || !top->directory) return fail("the container's root is not a directory");
    resolved.pins.push_back(std::move(top->pin));

    std::wstring host = root;
    std::string shown = "C:";
    for (std::size_t i = 0; i < parts.size(); ++i) {
        auto wide = toUtf16(parts[i]);
        if (!wide) return propagate(wide, std::string(containerPath));
        host += L'\\';
        host += *wide;
        shown += "\\" + parts[i];
        if (i + 1 == parts.size()) break;  // the last component is the caller's

        auto node = fs.openNode(host, true);
        if (!node) return propagate(node, shown);
        if (!node->exists) {
            if (!createParents) {
                resolved.parentsExist = false;
                resolved.host = hostPath(root, containerPath).value_or(host);
                return resolved;
            }
            if (auto made = fs.createDirectory(host, nullptr); !made)
                return propagate(made, "creating " + shown);
            node = fs.openNode(host, true);
            if (!node) return propagate(node, shown);
            if (!node->exists) return fail(shown + " vanished after it was created");
        }
        if (node->reparsePoint)
            return fail(shown + " is a reparse point (a link or junction in the image); refusing to follow it");
        if (!node->directory) return fail(shown + " is not a directory");
        resolved.pins.push_back(std::move(node->pin));
    }
    resolved.host = std::move(host);
    return resolved;
}

}  // namespace secretshim::platform
