// Base64 (RFC 4648, with padding) as the etcd JSON gateway uses it for keys
// and values. Decoding is strict and never throws: anything else is an error.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace secretshim::cluster {

std::string base64Encode(std::span<const unsigned char> bytes);
inline std::string base64Encode(std::string_view s) {
    return base64Encode({reinterpret_cast<const unsigned char*>(s.data()), s.size()});
}
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace secretshim::cluster
