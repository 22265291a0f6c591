#include "plugin/store/random_hex.hpp"

#include <vector>

#include <openssl/rand.h>

#include "mountfs/base/hex.hpp"

namespace secretshim::plugin {

Result<std::string> randomHex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (bytes > 0 && RAND_bytes(raw.data(), static_cast<int>(bytes)) != 1)
        return fail("the OpenSSL random generator failed");
    return hexEncode(raw);
}

}  // namespace secretshim::plugin
