// Error values: every failure is one line of message and, where a caller
// may act on the kind of failure, a code whose meaning `kind` says; callers
// add context on the way up. Library code returns errors, it neither logs
// nor throws; a program's main() turns one into a line on stderr.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace secretshim {

// What Error::code holds.
enum class ErrorKind : unsigned char {
    invalid,  // the input or the state is wrong (validation): code is 0
    posix,    // an errno value: the one a system call failed with, or one
              // that names the condition for callers to act on (EBADMSG:
              // does not decrypt, ENOENT: no such secret, ETIMEDOUT: no
              // answer in time, EPROTO: a peer broke the protocol)
    win32,    // a Win32 error code (GetLastError()), never an errno
};

struct Error {
    ErrorKind kind = ErrorKind::invalid;
    int code = 0;
    std::string message;  // one line, no secret values ever
};

template <class T>
using Result = tl::expected<T, Error>;

// A validation failure.
tl::unexpected<Error> fail(std::string message);
// A failed system call: keeps errno (or the saved `code`) and appends its
// strerror text.
tl::unexpected<Error> failErrno(std::string message);
tl::unexpected<Error> failErrno(int code, std::string message);
// A condition named by an errno value (see ErrorKind::posix) whose message
// already says what happened: no strerror text.
Error errorWith(int code, std::string message);
tl::unexpected<Error> failWith(int code, std::string message);

// Prefixes context: "context: message".
Error wrap(Error error, const std::string& context);

// Passes a failed Result's error on, as it is or with context in front:
//     if (!r) return propagate(r);
template <class T>
tl::unexpected<Error> propagate(const Result<T>& failed) {
    return tl::unexpected(failed.error());
}
template <class T>
tl::unexpected<Error> propagate(const Result<T>& failed, const std::string& context) {
    return tl::unexpected(wrap(failed.error(), context));
}

// Quotes a name for a message, keeping it on one printable line (NUL as
// \0, other control characters as ?).
std::string quote(std::string_view s);

}  // namespace secretshim
