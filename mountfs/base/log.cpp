#include "mountfs/base/log.hpp"

#include <array>
#include <cstdio>
#include <utility>

namespace secretshim {

namespace {

constexpr std::array<std::pair<LogLevel, std::string_view>, 5> kLevels{{
    {LogLevel::err, "err"},
    {LogLevel::warning, "warning"},
    {LogLevel::notice, "notice"},
    {LogLevel::info, "info"},
    {LogLevel::debug, "debug"},
}};

}  // namespace

void logLine(std::string_view program, std::string_view line) {
    // One call: stdio's lock keeps lines from threads whole.
    std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()), program.data(),
                 static_cast<int>(line.size()), line.data());
}

std::optional<LogLevel> parseLogLevel(std::string_view name) {
    for (const auto& [level, text] : kLevels)
        if (text == name) return level;
    return std::nullopt;
}

std::string_view logLevelName(LogLevel level) {
    for (const auto& [value, text] : kLevels)
        if (value == level) return text;
    return "?";
}

}  // namespace secretshim
