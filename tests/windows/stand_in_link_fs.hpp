// The real file system, except that a symbolic link (which wine 8 cannot
// create) is stood in for by a small regular file holding a marker and the
// link's text, reported as a reparse point by openNode(). It lives in the
// container root itself, so a restarted agent sees it as the first one
// left it. Used only by the wine end-to-end test's agent.
#pragma once

#include <windows.h>

#include <string>

#include "platform/windows/real_win_fs.hpp"
#include "platform/windows/utf16.hpp"

namespace secretshim::testing {

inline constexpr std::string_view kStandInPrefix = "secretshim-test-symlink:";

class StandInLinkFs : public platform::RealWinFs {
public:
    Result<platform::Node> openNode(const std::wstring& path, bool pin) override {
        auto node = RealWinFs::openNode(path, pin);
        if (node && node->exists && !node->directory && !node->reparsePoint) node->reparsePoint = isStandIn(path);
        return node;
    }

    Result<void> createSymlink(const std::wstring& link, const std::wstring& text) override {
        const std::string content = std::string(kStandInPrefix) + platform::toUtf8(text);
        return createFile(link, mountfs::Bytes(reinterpret_cast<const unsigned char*>(content.data()), content.size()),
                          nullptr);
    }

    static bool isStandIn(const std::wstring& path) {
        HANDLE h = ::CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                 nullptr, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
        if (h == INVALID_HANDLE_VALUE) return false;
        char buf[64] = {};
        DWORD n = 0;
        const BOOL ok = ::ReadFile(h, buf, static_cast<DWORD>(kStandInPrefix.size()), &n, nullptr);
        ::CloseHandle(h);
        return ok && std::string_view(buf, n) == kStandInPrefix;
    }
};

}  // namespace secretshim::testing
