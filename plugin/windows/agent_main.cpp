// secretshimd.exe: the Windows node agent. Runs in the foreground (as
// SYSTEM, e.g. a service wrapper, or an elevated console); logs one line
// per event to stderr (task ids and secret names, never values).
#include "platform/windows/real_win_fs.hpp"
#include "plugin/windows/agent_cli.hpp"
#include "plugin/windows/utf8_args.hpp"

int main() {
    secretshim::plugin::Utf8Args args;
    secretshim::platform::RealWinFs fs;
    return secretshim::plugin::runAgent(args.argc(), args.argv(), fs);
}
