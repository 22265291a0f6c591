// Win32 failures as Error values: the code is the Win32 error code (not an
// errno) and the message ends with the system's text for it.
#pragma once

#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

// "message: <system text> (Win32 error N)"; the Error's code is `code`.
tl::unexpected<Error> failWin32(std::string message, unsigned long code);
// An Error carrying Win32 code `code` with `message` as it is (no system
// text): for conditions the caller has already put into words.
tl::unexpected<Error> failWithCode(unsigned long code, std::string message);
// The same with GetLastError().
tl::unexpected<Error> failLastError(std::string message);

}  // namespace secretshim::platform
