// Tells the service manager how the agent is doing (systemd's Type=notify):
// READY=1 once the socket accepts connections, STOPPING=1 on shutdown.
// Without NOTIFY_SOCKET in the environment (not run by systemd) these do
// nothing; a build without libsystemd turns them into no-ops as well.
#pragma once

#include <string>

namespace secretshim::plugin {

void notifyReady(const std::string& status);
void notifyStopping();

}  // namespace secretshim::plugin
