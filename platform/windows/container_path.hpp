// Paths inside a Windows container's filesystem, resolved from the host.
// The image controls everything below the root: any existing component
// that is a reparse point (symbolic link, junction, mount point) is
// refused, never followed, and every checked component is held open
// without FILE_SHARE_DELETE until the caller is done, so it cannot be
// swapped for a link in between (CVE-2018-15664 is the Linux cousin).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/windows/unique_handle.hpp"
#include "platform/windows/win_fs.hpp"

namespace secretshim::platform {

// The container's filesystem root as given by the runtime ("C:\...",
// "\\?\Volume{...}\") as a "\\?\" host path without a trailing backslash.
Result<std::wstring> hostRoot(std::string_view rootfs);

// The host path of a canonical container path ("C:\a\b" -> root\a\b).
Result<std::wstring> hostPath(const std::wstring& root, std::string_view containerPath);

struct ResolvedPath {
    std::wstring host;               // the last component's host path (not opened)
    bool parentsExist = true;        // false: a parent is missing (only without createParents)
    std::vector<UniqueHandle> pins;  // the root and every parent, held open
};

// Walks `containerPath` (canonical, see mountfs/windows_target.hpp) from
// the root: every parent must be a directory and no reparse point;
// missing ones are created (inheriting their ACL) when createParents.
// Errors name the container path.
Result<ResolvedPath> resolveInRoot(WinFs& fs, const std::wstring& root, std::string_view containerPath,
                                   bool createParents);

}  // namespace secretshim::platform
