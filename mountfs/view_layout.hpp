// The layout of one task's secrets view: one file per reference (not per
// secret), so two references to the same secret with different owners or
// modes each keep their own. Docker shares one file per secret and the last
// reference's owner and mode win for both targets.
//
// Inside the view's filesystem:
//   dir/<path>     targets under /run/secrets, shown by one directory mount
//   file/<target>  every other target (file/etc/app/key for /etc/app/key),
//                  each shown by a single-file mount
#pragma once

#include <string>
#include <vector>

#include "mountfs/secret_ref.hpp"

namespace secretshim::mountfs {

struct ViewEntry {
    SecretRef ref;
    std::string file;        // path inside the view's filesystem
    bool inDirectory = false;  // served by the /run/secrets directory mount
};

struct ViewLayout {
    std::vector<ViewEntry> entries;   // in the order of the references
    std::vector<std::string> directories;  // to create inside dir/ and file/, parents first

    bool hasDirectoryMount() const;
};

inline constexpr std::string_view kViewDir = "dir";
inline constexpr std::string_view kViewFiles = "file";

// Plans the layout; the references must already be valid (validateRefs).
Result<ViewLayout> planView(const std::vector<SecretRef>& refs);

// The path of an entry's file inside its area (dir/ or file/), which
// ViewEntry::file spells with the area in front: for an entry in dir/, its
// path under the /run/secrets mount.
std::string pathInArea(const ViewEntry& entry);

// The directories an entry's file needs inside its area (paths as
// pathInArea() spells them), parents first.
std::vector<std::string> parentsInArea(const ViewEntry& entry);

}  // namespace secretshim::mountfs
