// secretshimd.exe: the Windows node agent. Runs in the foreground from an
// elevated console, logging one line per event to stderr, or as a Windows
// service (`secretshimd.exe service install`), logging to the Application
// event log; task ids and secret names, never values.
#include "platform/windows/real_win_fs.hpp"
#include "plugin/windows/agent_cli.hpp"
#include "plugin/windows/utf8_args.hpp"

int main() {
    secretshim::plugin::Utf8Args args;
    secretshim::platform::RealWinFs fs;
    return secretshim::plugin::runAgent(args.argc(), args.argv(), fs);
}
