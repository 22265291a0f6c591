// Trimming the fields of a spec or a rule.
#pragma once

#include <string_view>

namespace secretshim {

// `s` without the leading and trailing characters in `chars`.
constexpr std::string_view trim(std::string_view s, std::string_view chars = " \t\r\n") {
    const auto first = s.find_first_not_of(chars);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(chars) - first + 1);
}

}  // namespace secretshim
