#include "platform/windows/real_win_fs.hpp"

#include <aclapi.h>

#include <algorithm>

#include "platform/windows/utf16.hpp"
#include "platform/windows/win_error.hpp"

namespace secretshim::platform {
namespace {

constexpr DWORD kChunk = 64 * 1024;
// A replace that meets a reader without FILE_SHARE_DELETE is retried this
// often, kReplaceWaitMs apart, before the update is reported as failed.
constexpr int kReplaceTries = 5;
constexpr DWORD kReplaceWaitMs = 20;

std::string shown(const std::wstring& path) { return "\"" + toUtf8(path) + "\""; }

bool isMissing(DWORD code) { return code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND; }

// FILE_FLAG_BACKUP_SEMANTICS opens directories too; FILE_FLAG_OPEN_REPARSE_POINT
// opens a link or junction itself instead of what it points at.
UniqueHandle openNoFollow(const std::wstring& path, DWORD access, DWORD share, DWORD extraFlags = 0) {
    return UniqueHandle(::CreateFileW(path.c_str(), access, share, nullptr, OPEN_EXISTING,
                                      FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT | extraFlags,
                                      nullptr));
}

Result<DWORD> handleAttributes(HANDLE handle, const std::wstring& path) {
    BY_HANDLE_FILE_INFORMATION info{};
    if (!::GetFileInformationByHandle(handle, &info)) return failLastError("inspecting " + shown(path));
    return info.dwFileAttributes;
}

Result<void> writeAll(HANDLE handle, mountfs::Bytes data, const std::wstring& path) {
    std::size_t done = 0;
    while (done < data.size()) {
        const DWORD chunk = static_cast<DWORD>(std::min<std::size_t>(kChunk, data.size() - done));
        DWORD written = 0;
        if (!::WriteFile(handle, data.data() + done, chunk, &written, nullptr) || written == 0)
            return failLastError("writing " + shown(path));
        done += written;
    }
    return {};
}

}  // namespace

Result<Node> RealWinFs::openNode(const std::wstring& path, bool pin) {
    // No FILE_SHARE_DELETE: while the handle is open the entry cannot be
    // renamed or deleted, so what was checked stays what is used.
    UniqueHandle handle = openNoFollow(path, FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE);
    if (!handle) {
        const DWORD code = ::GetLastError();
        if (isMissing(code)) return Node{};
        return failWin32("opening " + shown(path), code);
    }
    auto attributes = handleAttributes(handle.get(), path);
    if (!attributes) return propagate(attributes);
    DWORD all = *attributes;
    // Windows reports a reparse point through the handle; wine 8 reports a
    // unix symbolic link to a directory only through the path. Either way
    // it is refused.
    if (const DWORD byPath = ::GetFileAttributesW(path.c_str()); byPath != INVALID_FILE_ATTRIBUTES)
        all |= byPath & FILE_ATTRIBUTE_REPARSE_POINT;
    Node node;
    node.exists = true;
    node.directory = (all & FILE_ATTRIBUTE_DIRECTORY) != 0;
    node.reparsePoint = (all & FILE_ATTRIBUTE_REPARSE_POINT) != 0;
    if (pin) node.pin = std::move(handle);
    return node;
}

Result<void> RealWinFs::createDirectory(const std::wstring& path, const SecurityDescriptor* descriptor) {
    SECURITY_ATTRIBUTES attributes{sizeof attributes, descriptor ? descriptor->get() : nullptr, FALSE};
    if (!::CreateDirectoryW(path.c_str(), descriptor ? &attributes : nullptr))
        return failLastError("creating the directory " + shown(path));
    return {};
}

Result<void> RealWinFs::protectDirectory(const std::wstring& path, const SecurityDescriptor& descriptor) {
    // Through a handle opened without following a reparse point, not by
    // name: SetNamedSecurityInfoW would follow one.
    UniqueHandle handle = openNoFollow(path, READ_CONTROL | WRITE_DAC, FILE_SHARE_READ | FILE_SHARE_WRITE);
    if (!handle) return failLastError("opening " + shown(path) + " to set its ACL");
    const DWORD code = ::SetSecurityInfo(handle.get(), SE_FILE_OBJECT,
                                         DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                                         nullptr, nullptr, descriptor.dacl(), nullptr);
    if (code != ERROR_SUCCESS) return failWin32("setting the ACL of " + shown(path), code);
    return {};
}

Result<std::vector<DirEntry>> RealWinFs::listDirectory(const std::wstring& path) {
    WIN32_FIND_DATAW data{};
    UniqueFindHandle find(::FindFirstFileExW((path + L"\\*").c_str(), FindExInfoBasic, &data,
                                             FindExSearchNameMatch, nullptr, 0));
    if (!find) return failLastError("listing " + shown(path));
    std::vector<DirEntry> entries;
    do {
        const std::wstring name = data.cFileName;
        if (name == L"." || name == L"..") continue;
        entries.push_back(DirEntry{name, (data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0,
                                   (data.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0});
    } while (::FindNextFileW(find.get(), &data));
    if (const DWORD code = ::GetLastError(); code != ERROR_NO_MORE_FILES)
        return failWin32("listing " + shown(path), code);
    return entries;
}

Result<void> RealWinFs::createFile(const std::wstring& path, mountfs::Bytes data,
                                   const SecurityDescriptor* descriptor) {
    SECURITY_ATTRIBUTES attributes{sizeof attributes, descriptor ? descriptor->get() : nullptr, FALSE};
    // CREATE_NEW fails on any existing name, a link included: nothing the
    // image placed is ever written through.
    UniqueHandle file(::CreateFileW(path.c_str(), GENERIC_WRITE, 0, descriptor ? &attributes : nullptr,
                                    CREATE_NEW, FILE_ATTRIBUTE_NORMAL, nullptr));
    if (!file) return failLastError("creating " + shown(path));
    auto ok = writeAll(file.get(), data, path);
    if (ok && !::FlushFileBuffers(file.get())) ok = failLastError("flushing " + shown(path));
    if (!ok) {
        file.reset();
        (void)wipeFile(path, false);
        ::DeleteFileW(path.c_str());
    }
    return ok;
}

Result<void> RealWinFs::createHardLink(const std::wstring& link, const std::wstring& existing) {
    if (!::CreateHardLinkW(link.c_str(), existing.c_str(), nullptr))
        return failLastError("linking " + shown(link) + " to " + shown(existing));
    return {};
}

Result<void> RealWinFs::replaceFile(const std::wstring& from, const std::wstring& to) {
    // A reader that opened the file without FILE_SHARE_DELETE blocks the
    // rename until it closes it: retry briefly, then report it.
    for (int attempt = 1;; ++attempt) {
        if (::MoveFileExW(from.c_str(), to.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
            return {};
        const DWORD code = ::GetLastError();
        if (attempt >= kReplaceTries || (code != ERROR_SHARING_VIOLATION && code != ERROR_ACCESS_DENIED))
            return failWin32("replacing " + shown(to), code);
        ::Sleep(kReplaceWaitMs);
    }
}

Result<bool> RealWinFs::wipeFile(const std::wstring& path, bool onlyIfUnused) {
    // Share mode 0 fails while any other handle reads or writes the file.
    const DWORD share = onlyIfUnused ? 0 : FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    UniqueHandle file = openNoFollow(path, GENERIC_WRITE | FILE_READ_ATTRIBUTES, share, FILE_FLAG_WRITE_THROUGH);
    if (!file) {
        const DWORD code = ::GetLastError();
        if (onlyIfUnused && code == ERROR_SHARING_VIOLATION) return false;
        return failWin32("opening " + shown(path) + " to overwrite it", code);
    }
    auto attributes = handleAttributes(file.get(), path);
    if (!attributes) return propagate(attributes);
    if (*attributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT))
        return fail("refusing to overwrite " + shown(path) + ": not a regular file");
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(file.get(), &size)) return failLastError("sizing " + shown(path));
    static const unsigned char zeros[kChunk] = {};
    for (LONGLONG left = size.QuadPart; left > 0;) {
        const auto chunk = static_cast<std::size_t>(std::min<LONGLONG>(kChunk, left));
        if (auto ok = writeAll(file.get(), mountfs::Bytes(zeros, chunk), path); !ok)
            return propagate(ok);
        left -= static_cast<LONGLONG>(chunk);
    }
    if (!::FlushFileBuffers(file.get())) return failLastError("flushing " + shown(path));
    return true;
}

Result<void> RealWinFs::deleteFile(const std::wstring& path) {
    if (!::DeleteFileW(path.c_str())) return failLastError("deleting " + shown(path));
    return {};
}

Result<void> RealWinFs::removeDirectory(const std::wstring& path) {
    if (!::RemoveDirectoryW(path.c_str())) return failLastError("removing the directory " + shown(path));
    return {};
}

Result<void> RealWinFs::createSymlink(const std::wstring& link, const std::wstring& text) {
    // mingw's std::filesystem::create_symlink never reaches this call.
    if (!::CreateSymbolicLinkW(link.c_str(), text.c_str(), 0))
        return failLastError("creating the symbolic link " + shown(link));
    // wine 8 answers TRUE and creates nothing: a container must never start
    // without its secret, so the link's existence is checked.
    auto node = openNode(link, false);
    if (!node) return propagate(node);
    if (!node->exists || !node->reparsePoint)
        return fail("CreateSymbolicLinkW reported success but no link exists at " + shown(link) +
                    " (symbolic links are not supported here)");
    return {};
}

}  // namespace secretshim::platform
