// Error values: every failure carries an errno (0 when none applies) and a
// one-line message; callers add context on the way up. Exceptions are only
// used at a program's edge.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace secretshim {

struct Error {
    int code = 0;          // errno, or 0 for a validation error
    std::string message;   // one line, no secret values ever
};

template <class T>
using Result = tl::expected<T, Error>;

// A validation failure.
tl::unexpected<Error> fail(std::string message);
// A system call failure: appends strerror(errno) and keeps the errno.
tl::unexpected<Error> failErrno(std::string message);
tl::unexpected<Error> failCode(int code, std::string message);
// Prefixes context: "context: message".
Error wrap(Error error, const std::string& context);
// Quotes a name for a message, keeping it on one printable line (NUL as
// \0, other control characters as ?).
std::string quote(std::string_view s);

}  // namespace secretshim
