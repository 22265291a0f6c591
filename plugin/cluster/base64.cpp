#include "plugin/cluster/base64.hpp"

#include <openssl/evp.h>

namespace secretshim::cluster {

std::string base64Encode(std::span<const unsigned char> in) {
    // EVP_EncodeBlock writes 4 characters per 3 bytes (padded) and a NUL.
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), in.data(), static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
    // EVP_DecodeBlock is lenient where we are strict: it skips leading and
    // trailing whitespace, decodes padding as zero bytes (its length counts
    // them) and accepts '=' anywhere and non-zero bits under the padding.
    // Only the canonical encoding of what it decoded is accepted.
    if (text.size() % 4 != 0 || text.size() > 0x7fffffff) return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    if (base64Encode(out) != text) return std::nullopt;
    return out;
}

}  // namespace secretshim::cluster
