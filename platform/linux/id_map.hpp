// A process's user-namespace id mappings (/proc/PID/uid_map, gid_map): a
// container with a user namespace names its owners by container ids, and
// files we create for it must carry the host ids those map to.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

class IdMap {
public:
    struct Range {
        std::uint32_t inside;   // first id in the namespace
        std::uint32_t outside;  // the host id it maps to
        std::uint32_t count;
    };
    // The text of a uid_map or gid_map: lines "INSIDE OUTSIDE COUNT".
    static Result<IdMap> parse(std::string_view text);
    // /proc/PID/uid_map or gid_map ("uid" or "gid"), read through procDir
    // (a dirfd of the host's /proc, or AT_FDCWD for "/proc").
    static Result<IdMap> read(int procDir, pid_t pid, const char* kind);

    // The host id for a namespace id; Error if it has no mapping.
    Result<std::uint32_t> toHost(std::uint32_t inside) const;
    // The initial namespace's map, "0 0 4294967295": every id is itself.
    bool identity() const;

private:
    std::vector<Range> ranges_;
};

struct HostIds {
    uid_t uid;
    gid_t gid;
};
// The host uid and gid of process `pid`'s namespace root (0 and 0 without a
// user namespace): the owner of what is created in its container's tree.
Result<HostIds> containerRootIds(pid_t pid);
// Creates what follows as `ids` (setfsuid/setfsgid; capabilities are
// unaffected), checked: one error line when the kernel kept the old ids.
Result<void> actAs(HostIds ids);

}  // namespace secretshim::platform
