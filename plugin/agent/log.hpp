// The agent's log: one line on stderr (journald adds the time and the
// unit), "secretshimd: <line>". Never a secret's value.
#pragma once

#include <string_view>

#include "mountfs/base/log.hpp"

namespace secretshim::plugin {

inline void log(std::string_view line) { logLine("secretshimd", line); }

}  // namespace secretshim::plugin
