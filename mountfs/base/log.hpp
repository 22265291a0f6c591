// Logging is for programs (the agent, the CLIs), never for library code,
// which returns errors: one line on stderr, "<program>: <line>".
#pragma once

#include <optional>
#include <string_view>

namespace secretshim {

void logLine(std::string_view program, std::string_view line);

// How much a line matters, by syslog's numbers (journald's PRIORITY): a
// program that filters logs what is at or above its level.
enum class LogLevel { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// "err", "warning", "notice", "info", "debug"; nullopt for anything else.
std::optional<LogLevel> parseLogLevel(std::string_view name);
std::string_view logLevelName(LogLevel level);

}  // namespace secretshim
