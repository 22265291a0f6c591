// secretshimd.exe's command line and main loop, with the file system passed
// in: the program uses the real one; the wine end-to-end test passes one
// that stands in for the symbolic links wine 8 cannot create.
#pragma once

#include "platform/windows/win_fs.hpp"
#include "plugin/windows/state_files.hpp"

namespace secretshim::plugin {

// `stateDir`: how an existing state directory is checked (the program
// always passes mustBePrivate).
int runAgent(int argc, char** argv, platform::WinFs& fs,
             ExistingDirectory stateDir = ExistingDirectory::mustBePrivate);

}  // namespace secretshim::plugin
