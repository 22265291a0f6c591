#include "plugin/windows/state_files.hpp"

#include <windows.h>
#include <aclapi.h>

#include "platform/windows/unique_handle.hpp"
#include "platform/windows/utf16.hpp"
#include "platform/windows/win_error.hpp"
#include "plugin/store/random_hex.hpp"

namespace secretshim::plugin {
namespace {

using platform::failLastError;
using platform::failWin32;
using platform::toUtf8;
using platform::UniqueHandle;
using platform::UniqueFindHandle;

std::string shown(const std::wstring& path) {
    std::wstring_view view(path);
    if (view.starts_with(L"\\\\?\\")) view.remove_prefix(4);
    return quote(toUtf8(view));
}

bool isMissing(DWORD code) { return code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND; }

}  // namespace

Result<std::wstring> absoluteDirectory(std::string_view path) {
    auto wide = platform::toUtf16(path);
    if (!wide) return propagate(wide, "directory " + quote(path));
    if (wide->empty()) return fail("empty directory name");
    if (wide->starts_with(L"\\\\?\\")) return *wide;
    wchar_t full[MAX_PATH * 4] = {};
    const DWORD n = ::GetFullPathNameW(wide->c_str(), static_cast<DWORD>(std::size(full)), full, nullptr);
    if (n == 0 || n >= std::size(full)) return failLastError("resolving the directory " + quote(path));
    std::wstring out(full, n);
    while (out.size() > 3 && out.back() == L'\\') out.pop_back();
    if (out.starts_with(L"\\\\")) return fail("directory " + quote(path) + " is on a network share");
    return L"\\\\?\\" + out;
}

Result<void> ensurePrivateDirectory(const std::wstring& path, const platform::SecurityDescriptor& descriptor,
                                    ExistingDirectory existing) {
    SECURITY_ATTRIBUTES attributes{sizeof attributes, descriptor.get(), FALSE};
    if (::CreateDirectoryW(path.c_str(), &attributes)) return {};
    const DWORD code = ::GetLastError();
    if (code != ERROR_ALREADY_EXISTS) return failWin32("creating the directory " + shown(path), code);
    const DWORD kind = ::GetFileAttributesW(path.c_str());
    if (kind == INVALID_FILE_ATTRIBUTES) return failLastError("reading the attributes of " + shown(path));
    if (kind & FILE_ATTRIBUTE_REPARSE_POINT)
        return fail(shown(path) + " is a reparse point (a link or junction); refusing to follow it");
    if (!(kind & FILE_ATTRIBUTE_DIRECTORY)) return fail(shown(path) + " is not a directory");
    if (existing == ExistingDirectory::asItIs) return {};
    // Made before this start, maybe by someone else: used only if nobody
    // but Administrators and SYSTEM could have put a key or a record in it.
    UniqueHandle dir(::CreateFileW(path.c_str(), READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                   nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                                   nullptr));
    if (!dir) return failLastError("opening " + shown(path));
    PSECURITY_DESCRIPTOR security = nullptr;
    if (const DWORD got = ::GetSecurityInfo(dir.get(), SE_FILE_OBJECT,
                                            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, nullptr, nullptr,
                                            nullptr, nullptr, &security);
        got != ERROR_SUCCESS)
        return failWin32("reading the security of " + shown(path), got);
    auto ok = platform::checkAdminsAndSystemOnly(security);
    ::LocalFree(security);
    if (!ok) return fail(shown(path) + " already exists and is not private: " + ok.error().message);
    return {};
}

Result<SecureBuffer> readWholeFile(const std::wstring& path, std::size_t maxBytes) {
    UniqueHandle file(::CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                                    FILE_FLAG_OPEN_REPARSE_POINT, nullptr));
    if (!file) {
        const DWORD code = ::GetLastError();
        if (isMissing(code)) return platform::failWithCode(ERROR_FILE_NOT_FOUND, shown(path) + " does not exist");
        return failWin32("opening " + shown(path), code);
    }
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(file.get(), &size)) return failLastError("sizing " + shown(path));
    if (size.QuadPart <= 0) return fail(shown(path) + " is empty");
    if (static_cast<unsigned long long>(size.QuadPart) > maxBytes) return fail(shown(path) + " is too large");
    auto buffer = SecureBuffer::allocate(static_cast<std::size_t>(size.QuadPart));
    if (!buffer) return propagate(buffer);
    std::size_t done = 0;
    while (done < buffer->size()) {
        DWORD n = 0;
        if (!::ReadFile(file.get(), buffer->data() + done, static_cast<DWORD>(buffer->size() - done), &n, nullptr))
            return failLastError("reading " + shown(path));
        if (n == 0) return fail(shown(path) + " shrank while it was read");
        done += n;
    }
    return buffer;
}

Result<void> writeFileAtomically(const std::wstring& path, std::span<const unsigned char> data,
                                 const platform::SecurityDescriptor& descriptor, bool replace) {
    auto suffix = randomHex(8);
    if (!suffix) return propagate(suffix);
    const std::wstring temp = path + L".tmp-" + std::wstring(suffix->begin(), suffix->end());
    SECURITY_ATTRIBUTES attributes{sizeof attributes, descriptor.get(), FALSE};
    {
        UniqueHandle file(::CreateFileW(temp.c_str(), GENERIC_WRITE, 0, &attributes, CREATE_NEW,
                                        FILE_ATTRIBUTE_NORMAL, nullptr));
        if (!file) return failLastError("creating " + shown(temp));
        std::size_t done = 0;
        bool ok = true;
        while (ok && done < data.size()) {
            DWORD n = 0;
            ok = ::WriteFile(file.get(), data.data() + done, static_cast<DWORD>(data.size() - done), &n, nullptr) &&
                 n > 0;
            done += n;
        }
        if (!ok || !::FlushFileBuffers(file.get())) {
            auto error = failLastError("writing " + shown(temp));
            file.reset();
            ::DeleteFileW(temp.c_str());
            return error;
        }
    }
    const DWORD flags = MOVEFILE_WRITE_THROUGH | (replace ? MOVEFILE_REPLACE_EXISTING : 0);
    if (!::MoveFileExW(temp.c_str(), path.c_str(), flags)) {
        const DWORD code = ::GetLastError();
        ::DeleteFileW(temp.c_str());
        if (code == ERROR_ALREADY_EXISTS || code == ERROR_FILE_EXISTS)
            return platform::failWithCode(ERROR_ALREADY_EXISTS, shown(path) + " already exists");
        return failWin32("renaming into " + shown(path), code);
    }
    return {};
}

Result<std::vector<std::wstring>> listFileNames(const std::wstring& dir, std::wstring_view suffix) {
    WIN32_FIND_DATAW data{};
    UniqueFindHandle find(::FindFirstFileExW((dir + L"\\*").c_str(), FindExInfoBasic, &data, FindExSearchNameMatch,
                                             nullptr, 0));
    if (!find) return failLastError("listing " + shown(dir));
    std::vector<std::wstring> names;
    do {
        const std::wstring name = data.cFileName;
        if (data.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)) continue;
        if (name.size() > suffix.size() && name.ends_with(suffix)) names.push_back(name);
    } while (::FindNextFileW(find.get(), &data));
    if (const DWORD code = ::GetLastError(); code != ERROR_NO_MORE_FILES) return failWin32("listing " + shown(dir), code);
    return names;
}

Result<bool> removeFileIfPresent(const std::wstring& path) {
    if (::DeleteFileW(path.c_str())) return true;
    const DWORD code = ::GetLastError();
    if (isMissing(code)) return false;
    return failWin32("deleting " + shown(path), code);
}

}  // namespace secretshim::plugin
