// WinFs through Win32 calls.
#pragma once

#include "platform/windows/win_fs.hpp"

namespace secretshim::platform {

class RealWinFs : public WinFs {
public:
    Result<Node> openNode(const std::wstring& path, bool pin) override;
    Result<void> createDirectory(const std::wstring& path, const SecurityDescriptor* descriptor) override;
    Result<void> protectDirectory(const std::wstring& path, const SecurityDescriptor& descriptor) override;
    Result<std::vector<DirEntry>> listDirectory(const std::wstring& path) override;
    Result<void> createFile(const std::wstring& path, mountfs::Bytes data,
                            const SecurityDescriptor* descriptor) override;
    Result<void> createHardLink(const std::wstring& link, const std::wstring& existing) override;
    Result<void> replaceFile(const std::wstring& from, const std::wstring& to) override;
    Result<bool> wipeFile(const std::wstring& path, bool onlyIfUnused) override;
    Result<void> deleteFile(const std::wstring& path) override;
    Result<void> removeDirectory(const std::wstring& path) override;
    Result<void> createSymlink(const std::wstring& link, const std::wstring& text) override;
};

}  // namespace secretshim::platform
