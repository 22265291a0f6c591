// What the running kernel supports, found by trying each call. Every
// fallback is chosen from this, never from a kernel version.
#pragma once

#include <string>

namespace secretshim::platform {

struct KernelFeatures {
    bool newMountApi = false;     // fsopen/fsmount/open_tree/move_mount (5.2)
    bool openat2 = false;         // RESOLVE_IN_ROOT (5.6)
    bool pidfdSetns = false;      // setns() on a pidfd (5.8)
    bool mountSetattr = false;    // mount_setattr (5.12)
    bool tmpfsNoswap = false;     // tmpfs "noswap" (6.4)
    bool moveMountBeneath = false;  // MOVE_MOUNT_BENEATH (6.5)
    bool detachedClone = false;   // open_tree(OPEN_TREE_CLONE) of a detached mount (6.15)

    // The features a secrets view cannot do without.
    bool sufficient() const { return newMountApi && openat2 && pidfdSetns && mountSetattr; }
    std::string describe() const;  // "new-mount-api=yes openat2=yes ..."
};

// Whether the kernel zeroes freed pages (init_on_free): "on" or "off" from
// the command line, else from the kernel's build config in /boot, else
// "unknown". With it, pages of a secret file the agent could not overwrite
// (an old version replaced under a reader, DESIGN.md) are zeroed when freed.
std::string initOnFree();

// Probes once per process; cheap afterwards.
const KernelFeatures& kernelFeatures();
KernelFeatures probeKernelFeatures();

}  // namespace secretshim::platform
