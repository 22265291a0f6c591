// Logging is for programs (the agent, the CLIs), never for library code,
// which returns errors: one line on stderr, "<program>: <line>".
#pragma once

#include <string_view>

namespace secretshim {

void logLine(std::string_view program, std::string_view line);

}  // namespace secretshim
