// gcmOpen for both builds: a locked buffer plus gcmOpenInto, which each
// build implements (OpenSSL EVP in aes_gcm.cpp, CNG in aes_gcm_bcrypt.cpp).
#include "plugin/store/aes_gcm.hpp"

#include <cerrno>

namespace secretshim::plugin {

Result<SecureBuffer> gcmOpen(std::span<const unsigned char> key, const GcmNonce& nonce,
                             std::span<const unsigned char> ciphertext, const GcmTag& tag,
                             std::span<const unsigned char> aad) {
    // Checked before allocating: a zero-length buffer is its own error.
    if (ciphertext.empty()) return failWith(EBADMSG, "cannot decrypt");
    auto plain = SecureBuffer::allocate(ciphertext.size());
    if (!plain) return propagate(plain);
    if (auto ok = gcmOpenInto(key, nonce, ciphertext, tag, aad, plain->span()); !ok)
        return propagate(ok);
    return plain;
}

}  // namespace secretshim::plugin
