// AES-256-GCM: a 96-bit nonce, a 128-bit tag and associated data that is
// authenticated but not encrypted. Linux: OpenSSL 3 EVP (aes_gcm.cpp);
// Windows: CNG (aes_gcm_bcrypt.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

inline constexpr std::size_t kAesKeySize = 32;
inline constexpr std::size_t kGcmNonceSize = 12;
inline constexpr std::size_t kGcmTagSize = 16;

using GcmNonce = std::array<unsigned char, kGcmNonceSize>;
using GcmTag = std::array<unsigned char, kGcmTagSize>;

struct GcmSealed {
    GcmNonce nonce{};
    std::vector<unsigned char> ciphertext;  // as long as the plaintext
    GcmTag tag{};
};

// Encrypts under a fresh random nonce: with GCM, reusing a nonce under one
// key reveals the XOR of two plaintexts and lets tags be forged.
Result<GcmSealed> gcmSeal(std::span<const unsigned char> key, std::span<const unsigned char> plaintext,
                          std::span<const unsigned char> aad);

// Decrypts straight into a SecureBuffer. Any failure, including a tag
// mismatch, is Error{EBADMSG, "cannot decrypt"}; callers add the context.
Result<SecureBuffer> gcmOpen(std::span<const unsigned char> key, const GcmNonce& nonce,
                             std::span<const unsigned char> ciphertext, const GcmTag& tag,
                             std::span<const unsigned char> aad);
// The same into `out` (exactly ciphertext.size() bytes of a SecureBuffer):
// one locked buffer can hold many values. Wiped on failure.
Result<void> gcmOpenInto(std::span<const unsigned char> key, const GcmNonce& nonce,
                         std::span<const unsigned char> ciphertext, const GcmTag& tag,
                         std::span<const unsigned char> aad, std::span<unsigned char> out);
// Decrypts in pieces of at most buffer.size() bytes through `buffer` (a
// small SecureBuffer, reused), handing each to `piece` before the next
// overwrites it. The tag is checked only at the end: until this returns
// success what `piece` received is unauthenticated, and on EBADMSG the
// receiver must wipe it. An error of `piece` is returned as it is. The
// buffer is wiped on failure; on success it still holds the last piece,
// for its owner to wipe (SecureBuffer does) when it is done with it.
using GcmPiece = std::function<Result<void>(std::span<const unsigned char>)>;
Result<void> gcmOpenPieces(std::span<const unsigned char> key, const GcmNonce& nonce,
                           std::span<const unsigned char> ciphertext, const GcmTag& tag,
                           std::span<const unsigned char> aad, std::span<unsigned char> buffer,
                           const GcmPiece& piece);

}  // namespace secretshim::plugin
