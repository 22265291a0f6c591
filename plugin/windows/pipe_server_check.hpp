// Who serves the agent's pipe, as the hook sees it. The agent runs as
// SYSTEM or as an elevated administrator (agent_cli.cpp refuses to start
// otherwise); a process that created the pipe's name before the agent
// could learn task ids, roots and secret names and answer "ok" without
// writing anything, so the hook sends nothing to a server that runs as
// anything else.
#pragma once

#include <windows.h>

#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

// What a token says about its process.
struct TokenStanding {
    bool localSystem = false;   // the token's user is S-1-5-18
    bool elevated = false;      // TokenElevation
    bool administrator = false; // BUILTIN\Administrators enabled (not deny-only)
};

Result<TokenStanding> tokenStanding(HANDLE token);
// SYSTEM, or an elevated member of BUILTIN\Administrators.
bool mayServeAgentPipe(const TokenStanding& standing);

// Checks the process at the other end of a connected client pipe:
// GetNamedPipeServerProcessId, OpenProcess, OpenProcessToken, then
// mayServeAgentPipe. `shown` names the pipe in the error.
Result<void> checkPipeServer(HANDLE pipe, const std::string& shown);

}  // namespace secretshim::plugin
