// Reads an fd to its end with read(2): no iostreams (a hook process would
// pay for their static initialisation; /proc files of a dying process fail
// with ESRCH, from which iostreams throw).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

// Everything left in `fd`; "reading WHAT: ..." on an error, "WHAT is too
// large" past `limit` bytes.
inline Result<std::string> readAll(int fd, std::size_t limit, const std::string& what) {
    std::string data;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("reading " + what);
        if (n == 0) return data;
        data.append(buf, static_cast<std::size_t>(n));
        if (data.size() > limit) return fail(what + " is too large");
    }
}

}  // namespace secretshim::platform
