#include "mountfs/base/iso_time.hpp"

#include <ctime>

namespace secretshim {

std::string isoTime(std::int64_t seconds) {
    char buf[32];
    const std::time_t tt = static_cast<std::time_t>(seconds);
    std::tm tm{};
#ifdef _WIN32
    ::gmtime_s(&tm, &tt);
#else
    ::gmtime_r(&tt, &tm);
#endif
    if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "?";
    return buf;
}

}  // namespace secretshim
