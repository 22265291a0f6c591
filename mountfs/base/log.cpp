#include "mountfs/base/log.hpp"

#include <cstdio>

namespace secretshim {

void logLine(std::string_view program, std::string_view line) {
    // One call: stdio's lock keeps lines from threads whole.
    std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()), program.data(),
                 static_cast<int>(line.size()), line.data());
}

}  // namespace secretshim
