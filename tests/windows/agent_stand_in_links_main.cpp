// secretshimd.exe as the wine end-to-end test runs it: the real agent
// (pipe, store, views, records) over StandInLinkFs, because wine 8's
// CreateSymbolicLinkW creates nothing. Never installed. Under wine, whose
// files all show the unix user as owner, it takes an existing state
// directory as it is (so a restart can be tested); on Windows it checks it
// as the program does.
#include "plugin/windows/agent_cli.hpp"
#include "plugin/windows/utf8_args.hpp"
#include "tests/windows/stand_in_link_fs.hpp"
#include "tests/windows/test_support.hpp"

int main() {
    secretshim::plugin::Utf8Args args;
    secretshim::testing::StandInLinkFs fs;
    using secretshim::plugin::ExistingDirectory;
    return secretshim::plugin::runAgent(args.argc(), args.argv(), fs,
                                        secretshim::testing::runningUnderWine() ? ExistingDirectory::asItIs
                                                                                : ExistingDirectory::mustBePrivate);
}
