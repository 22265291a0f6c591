// plugin/store/random_hex.hpp for Windows: the system's CNG generator.
#include "plugin/store/random_hex.hpp"

#include <windows.h>
#include <bcrypt.h>

#include <climits>
#include <vector>

#include "mountfs/base/hex.hpp"

namespace secretshim::plugin {

Result<std::string> randomHex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (bytes > ULONG_MAX) return fail("random identifier too long");
    if (bytes > 0 && !BCRYPT_SUCCESS(::BCryptGenRandom(nullptr, raw.data(), static_cast<ULONG>(bytes),
                                                       BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
        return fail("the system random generator failed");
    return hexEncode(raw);
}

}  // namespace secretshim::plugin
