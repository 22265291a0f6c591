// Conversions between the UTF-8 of the model (mountfs/) and the UTF-16 of
// Win32's wide-character calls.
#pragma once

#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

// Refuses invalid UTF-8 instead of substituting U+FFFD: a path must never
// silently become another path.
Result<std::wstring> toUtf16(std::string_view utf8);
// Unpaired surrogates (possible in NTFS names) become U+FFFD: the result
// is only for messages.
std::string toUtf8(std::wstring_view utf16);

}  // namespace secretshim::platform
