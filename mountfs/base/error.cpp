#include "mountfs/base/error.hpp"

#include <cerrno>
#include <cstring>

namespace secretshim {

tl::unexpected<Error> fail(std::string message) {
    return tl::unexpected(Error{ErrorKind::invalid, 0, std::move(message)});
}

tl::unexpected<Error> failErrno(int code, std::string message) {
    message += ": ";
    message += std::strerror(code);
    return tl::unexpected(Error{ErrorKind::posix, code, std::move(message)});
}

tl::unexpected<Error> failErrno(std::string message) {
    const int code = errno;
    return failErrno(code, std::move(message));
}

Error errorWith(int code, std::string message) {
    return Error{ErrorKind::posix, code, std::move(message)};
}

tl::unexpected<Error> failWith(int code, std::string message) {
    return tl::unexpected(errorWith(code, std::move(message)));
}

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '\0')
            out += "\\0";
        else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            out += '?';
        else
            out += c;
    }
    return out + "\"";
}

Error wrap(Error error, const std::string& context) {
    error.message = context + ": " + error.message;
    return error;
}

}  // namespace secretshim
