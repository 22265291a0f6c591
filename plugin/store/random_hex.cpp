#include "plugin/store/random_hex.hpp"

#include <vector>

#include <openssl/rand.h>

namespace secretshim::plugin {

Result<std::string> randomHex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (bytes > 0 && RAND_bytes(raw.data(), static_cast<int>(bytes)) != 1)
        return fail("the OpenSSL random generator failed");
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes * 2);
    for (unsigned char b : raw) {
        hex += kDigits[b >> 4];
        hex += kDigits[b & 0xf];
    }
    return hex;
}

}  // namespace secretshim::plugin
