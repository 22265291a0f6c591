// `secretshimd.exe service install` and `service uninstall`: registering
// the agent with the service control manager and removing it again.
#pragma once

#include <string>

#include "mountfs/base/error.hpp"
#include "plugin/windows/command_lines.hpp"

namespace secretshim::plugin {

// Registers the service args.serviceName (own process, automatic start,
// LocalSystem, a description, restart on failure) to run this program with
// --service and the agent options in args.given. Returns the command line
// it registered. Fails in one line: not an elevated administrator, already
// installed, a bad option value.
Result<std::wstring> installService(const AgentArgs& args);

// Stops the service if it runs (waiting up to 30 s for it to stop), then
// deletes it. Refuses a service that does not run this program. Fails in
// one line: not an elevated administrator, not installed.
Result<void> uninstallService(const AgentArgs& args);

// One argument quoted so that CommandLineToArgvW (and the C runtime) read
// it back unchanged.
std::wstring quoteArgument(const std::wstring& arg);

}  // namespace secretshim::plugin
