// Tells the service manager how the agent is doing (systemd's Type=notify):
// READY=1 once the socket accepts connections, STOPPING=1 on shutdown; and
// keeps the views' roots in its fd store (plugin/agent/fd_store.hpp).
// Without NOTIFY_SOCKET in the environment (not run by systemd) these do
// nothing; a build without libsystemd turns them into no-ops as well.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "plugin/agent/fd_store.hpp"

namespace secretshim::plugin {

void notifyReady(const std::string& status);
void notifyStopping();

// systemd's fd store, or null when there is none to use.
std::unique_ptr<FdStore> serviceFdStore();
// The fds the service manager passed at start (sd_listen_fds_with_names),
// now owned by the caller; none outside systemd.
std::vector<StoredFd> takeStoredFds();

}  // namespace secretshim::plugin
