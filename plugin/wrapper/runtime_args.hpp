// What the runtime wrapper needs from a runc-style command line:
//   runc [global options] COMMAND [command options] ID
// containerd's shim calls `runc --root R --log L --log-format json create
// --bundle B --pid-file P ID`; crun takes the same form.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace secretshim::plugin {

struct RuntimeCommand {
    std::string command;                // "create", "start", ...; empty if none
    std::optional<std::string> bundle;  // create's --bundle/-b, if given
};

// args excludes argv[0]. Never fails: an argv the wrapper does not
// understand is handed to the real runtime as it is.
RuntimeCommand parseRuntimeCommand(const std::vector<std::string>& args);

}  // namespace secretshim::plugin
