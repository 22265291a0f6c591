// secretshimd.exe as the wine end-to-end test runs it: the real agent
// (pipe, store, views, records) over StandInLinkFs, because wine 8's
// CreateSymbolicLinkW creates nothing. Never installed.
#include "plugin/windows/agent_cli.hpp"
#include "plugin/windows/utf8_args.hpp"
#include "tests/windows/stand_in_link_fs.hpp"

int main() {
    secretshim::plugin::Utf8Args args;
    secretshim::testing::StandInLinkFs fs;
    return secretshim::plugin::runAgent(args.argc(), args.argv(), fs);
}
