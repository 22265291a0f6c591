// Confinement of a process for the attach phase: the hook (and any helper
// that enters a container) has its mount fds by then and needs only a
// handful of calls to attach them. Everything else it could be tricked
// into doing by a hostile image is taken away before it touches the
// container's filesystem.
#pragma once

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

// Called inside the container's mount namespace (setns() itself needs
// ptrace access to the container's init, so it comes before). Sets
// PR_SET_NO_NEW_PRIVS, drops every capability but the ones attaching needs
// (CAP_SYS_ADMIN for move_mount and umount2, CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH to create mount points in directories the image
// owns), and installs a seccomp allow-list; any other system call fails
// with EPERM. Irreversible.
Result<void> confineForAttach();

// The same for the agent's helper that re-adopts a running container's
// views after a restart: the attach allow-list plus open_tree,
// mount_setattr and fstatfs, which clone our mounts back out of the
// container. Nothing is ever created or mounted there.
Result<void> confineForReadopt();

}  // namespace secretshim::platform
