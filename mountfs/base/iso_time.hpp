// Times as the CLIs show them: UTC, ISO 8601 to the second.
#pragma once

#include <cstdint>
#include <string>

namespace secretshim {

// Seconds since the epoch as "2026-12-07T06:30:00Z".
std::string isoTime(std::int64_t seconds);

}  // namespace secretshim
