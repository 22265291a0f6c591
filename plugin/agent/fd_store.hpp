// The service manager's fd store (systemd: FileDescriptorStoreMax=,
// FDSTORE=1): the agent keeps each running container's writable view root
// there, named per container, so that after a crash the next agent gets
// the views back from systemd, not from inside the containers, and can
// wipe the view of a container that exited while no agent ran. systemd 252
// keeps the store across a crash and the automatic restart, and across a
// restart job (systemctl restart, a package upgrade's): it releases a
// unit's resources only once the unit is inactive with no job pending. It
// empties the store when the unit is stopped (systemctl stop).
#pragma once

#include <string>

#include "platform/linux/unique_fd.hpp"

namespace secretshim::plugin {

// An fd the service manager handed back at start, with its name.
struct StoredFd {
    std::string name;
    platform::UniqueFd fd;
};

// Where the agent keeps its views' roots: systemd's store
// (service_notify.cpp), or none (not run by systemd, no libsystemd).
class FdStore {
public:
    virtual ~FdStore() = default;
    // Keeps a duplicate of `fd` under `name` (the caller keeps its own).
    virtual void keep(const std::string& name, int fd) = 0;
    // Drops every fd kept under `name`.
    virtual void drop(const std::string& name) = 0;
};

// A task's view is kept under its TaskRecord::storeName() (64 hex digits,
// unique per task key: a name systemd keeps).

}  // namespace secretshim::plugin
