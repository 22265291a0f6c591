// secretshimd.exe as the service the service control manager (SCM)
// started: the command line `service install` registers carries the hidden
// --service flag, and the program then hands its main thread to the SCM's
// dispatcher (StartServiceCtrlDispatcherW) instead of serving in a console.
#pragma once

#include <functional>

#include <windows.h>

#include "plugin/agent/core/agent_core.hpp"

namespace secretshim::plugin {

// Serves until `stop` (a manual-reset event) is set; calls `serving` once
// the pipe accepts clients; logs through `log`. Returns the exit code.
using ServeFn = std::function<int(HANDLE stop, const std::function<void()>& serving, const LogFn& log)>;

// Runs `serve` as the SCM's service: SERVICE_START_PENDING until `serving`,
// then SERVICE_RUNNING; a stop or shutdown control reports
// SERVICE_STOP_PENDING and sets `stop`; SERVICE_STOPPED when `serve`
// returns, with its exit code as the service-specific one. Log lines go to
// the Application event log (source: the service's name). Returns 0, or 1
// when the program was not started by the SCM (one line on stderr).
int runAsService(ServeFn serve);

}  // namespace secretshim::plugin
