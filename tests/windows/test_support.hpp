// Helpers for the Windows tests. Secret bytes are compared in code and never
// printed: a failed comparison shows only "false".
#pragma once

#include <windows.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/secrets_view.hpp"

namespace secretshim::testing {

inline mountfs::Bytes bytesOf(std::string_view s) {
    return mountfs::Bytes(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

inline bool sameBytes(const std::vector<unsigned char>& got, std::string_view want) {
    return got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin(),
                                                   [](unsigned char a, char b) { return a == static_cast<unsigned char>(b); });
}

inline bool allZero(const std::vector<unsigned char>& got, std::size_t size) {
    if (got.size() != size) return false;
    for (unsigned char c : got)
        if (c != 0) return false;
    return true;
}

// True under wine, where symbolic links and ACLs are not what Windows does.
inline bool runningUnderWine() {
    const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
    return ntdll != nullptr && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

inline std::string narrow(const std::wstring& w) {
    std::string out;
    for (wchar_t c : w) out += c < 0x80 ? static_cast<char>(c) : '?';
    return out;
}

// A fresh directory under %TEMP% (a "\\?\" path), removed with what is in
// it when the test ends.
class TempDir {
public:
    explicit TempDir(const wchar_t* name) {
        wchar_t base[MAX_PATH] = {};
        ::GetTempPathW(MAX_PATH, base);
        std::wstring b = base;
        while (!b.empty() && b.back() == L'\\') b.pop_back();
        path_ = L"\\\\?\\" + b + L"\\secretshim-" + name + L"-" + std::to_wstring(::GetCurrentProcessId());
        removeTree(path_);
        ::CreateDirectoryW(path_.c_str(), nullptr);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { removeTree(path_); }

    const std::wstring& path() const { return path_; }
    // The same directory as a plain "C:\..." path, as a runtime gives a root.
    std::string plain() const { return narrow(path_.substr(4)); }

    static void removeTree(const std::wstring& dir) {
        WIN32_FIND_DATAW data{};
        HANDLE find = ::FindFirstFileW((dir + L"\\*").c_str(), &data);
        if (find != INVALID_HANDLE_VALUE) {
            do {
                const std::wstring name = data.cFileName;
                if (name == L"." || name == L"..") continue;
                const std::wstring child = dir + L"\\" + name;
                if (data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                    removeTree(child);
                else
                    ::DeleteFileW(child.c_str());
            } while (::FindNextFileW(find, &data));
            ::FindClose(find);
        }
        ::RemoveDirectoryW(dir.c_str());
    }

private:
    std::wstring path_;
};

// Removes everything inside `dir`, keeping `dir`.
inline void clearDirectory(const std::wstring& dir) {
    WIN32_FIND_DATAW data{};
    HANDLE find = ::FindFirstFileW((dir + L"\\*").c_str(), &data);
    if (find == INVALID_HANDLE_VALUE) return;
    std::vector<std::wstring> children;
    do {
        const std::wstring name = data.cFileName;
        if (name != L"." && name != L"..") children.push_back(dir + L"\\" + name);
    } while (::FindNextFileW(find, &data));
    ::FindClose(find);
    for (const std::wstring& child : children) {
        TempDir::removeTree(child);
        ::DeleteFileW(child.c_str());
    }
}

inline bool writeFile(const std::wstring& path, std::string_view data) {
    HANDLE h = ::CreateFileW(path.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) return false;
    DWORD written = 0;
    const BOOL ok = ::WriteFile(h, data.data(), static_cast<DWORD>(data.size()), &written, nullptr);
    ::CloseHandle(h);
    return ok && written == data.size();
}

// The file's bytes, or {0xFF} if it cannot be read (never equal to a marker).
inline std::vector<unsigned char> readFile(const std::wstring& path) {
    HANDLE h = ::CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) return {0xFF};
    std::vector<unsigned char> out;
    unsigned char buf[4096];
    DWORD n = 0;
    while (::ReadFile(h, buf, sizeof buf, &n, nullptr) && n > 0) out.insert(out.end(), buf, buf + n);
    ::CloseHandle(h);
    return out;
}

inline bool pathExists(const std::wstring& path) {
    return ::GetFileAttributesW(path.c_str()) != INVALID_FILE_ATTRIBUTES;
}

}  // namespace secretshim::testing
