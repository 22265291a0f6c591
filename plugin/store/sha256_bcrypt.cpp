#include "plugin/store/sha256.hpp"

#include <windows.h>
#include <bcrypt.h>

#include <array>

#include "mountfs/base/hex.hpp"

namespace secretshim::plugin {

Result<std::string> sha256Hex(std::string_view data) {
    std::array<unsigned char, 32> digest{};
    BCRYPT_ALG_HANDLE alg = nullptr;
    if (!BCRYPT_SUCCESS(::BCryptOpenAlgorithmProvider(&alg, BCRYPT_SHA256_ALGORITHM, nullptr, 0)))
        return fail("CNG SHA-256 is not available");
    const NTSTATUS status = ::BCryptHash(alg, nullptr, 0, reinterpret_cast<PUCHAR>(const_cast<char*>(data.data())),
                                         static_cast<ULONG>(data.size()), digest.data(), digest.size());
    ::BCryptCloseAlgorithmProvider(alg, 0);
    if (!BCRYPT_SUCCESS(status)) return fail("CNG SHA-256 failed");
    return hexEncode(digest);
}

}  // namespace secretshim::plugin
