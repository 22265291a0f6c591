#include "platform/windows/win_error.hpp"

#include <windows.h>

namespace secretshim::platform {

tl::unexpected<Error> failWin32(std::string message, unsigned long code) {
    char text[512] = {};
    const DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                                     code, MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US), text,
                                     sizeof text, nullptr);
    std::string system(text, n);
    // The system text ends with ".\r\n": keep the error on one line.
    while (!system.empty() && (system.back() == '\n' || system.back() == '\r' || system.back() == ' '))
        system.pop_back();
    message += ": ";
    if (!system.empty()) message += system + " ";
    message += "(Win32 error " + std::to_string(code) + ")";
    return tl::unexpected(Error{ErrorKind::win32, static_cast<int>(code), std::move(message)});
}

tl::unexpected<Error> failWithCode(unsigned long code, std::string message) {
    return tl::unexpected(Error{ErrorKind::win32, static_cast<int>(code), std::move(message)});
}

tl::unexpected<Error> failLastError(std::string message) {
    return failWin32(std::move(message), ::GetLastError());
}

}  // namespace secretshim::platform
