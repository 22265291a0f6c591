#include "mountfs/base/hex.hpp"

namespace secretshim {

void hexEncodeTo(std::span<const unsigned char> bytes, char* out) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (unsigned char b : bytes) {
        *out++ = kDigits[b >> 4];
        *out++ = kDigits[b & 0xf];
    }
}

std::string hexEncode(std::span<const unsigned char> bytes) {
    std::string hex(bytes.size() * 2, '\0');
    hexEncodeTo(bytes, hex.data());
    return hex;
}

}  // namespace secretshim
