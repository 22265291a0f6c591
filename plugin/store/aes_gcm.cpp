#include "plugin/store/aes_gcm.hpp"

#include <cerrno>
#include <algorithm>
#include <climits>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace secretshim::plugin {
namespace {

struct CtxFree {
    void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }  // cleanses the key schedule
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

bool fitsInt(std::size_t n) { return n <= static_cast<std::size_t>(INT_MAX); }

tl::unexpected<Error> cannotDecrypt() {
    ERR_clear_error();  // leave no stale failure for the next OpenSSL caller
    return failWith(EBADMSG, "cannot decrypt");
}

}  // namespace

Result<GcmSealed> gcmSeal(std::span<const unsigned char> key, std::span<const unsigned char> plaintext,
                          std::span<const unsigned char> aad) {
    if (key.size() != kAesKeySize) return fail("encrypting: the key is not 256 bits");
    if (!fitsInt(plaintext.size()) || !fitsInt(aad.size())) return fail("encrypting: input too large");

    GcmSealed out;
    if (RAND_bytes(out.nonce.data(), static_cast<int>(out.nonce.size())) != 1)
        return fail("encrypting: the OpenSSL random generator failed");
    out.ciphertext.resize(plaintext.size());

    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    int tail = 0;
    const bool ok =
        ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kGcmNonceSize), nullptr) == 1 &&
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), out.nonce.data()) == 1 &&
        (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
        EVP_EncryptUpdate(ctx.get(), out.ciphertext.data(), &len, plaintext.data(),
                          static_cast<int>(plaintext.size())) == 1 &&
        EVP_EncryptFinal_ex(ctx.get(), out.ciphertext.data() + len, &tail) == 1 &&
        static_cast<std::size_t>(len + tail) == plaintext.size() &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagSize), out.tag.data()) == 1;
    if (!ok) {
        ERR_clear_error();
        return fail("encrypting: OpenSSL AES-256-GCM failed");
    }
    return out;
}

Result<void> gcmOpenPieces(std::span<const unsigned char> key, const GcmNonce& nonce,
                           std::span<const unsigned char> ciphertext, const GcmTag& tag,
                           std::span<const unsigned char> aad, std::span<unsigned char> buffer,
                           const GcmPiece& piece) {
    if (key.size() != kAesKeySize || ciphertext.empty() || buffer.empty() || !fitsInt(buffer.size()) ||
        !fitsInt(aad.size()))
        return cannotDecrypt();
    GcmTag expected = tag;
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    bool ok =
        ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kGcmNonceSize), nullptr) == 1 &&
        EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) == 1 &&
        (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1);
    std::size_t used = 0;  // bytes of the buffer that held plaintext
    Result<void> handed;
    for (std::size_t done = 0; ok && handed && done < ciphertext.size();) {
        const std::size_t n = std::min(buffer.size(), ciphertext.size() - done);
        // GCM is a stream mode: each update writes exactly its input's length.
        ok = EVP_DecryptUpdate(ctx.get(), buffer.data(), &len, ciphertext.data() + done, static_cast<int>(n)) == 1 &&
             static_cast<std::size_t>(len) == n;
        if (!ok) break;
        used = std::max(used, n);
        handed = piece(buffer.first(n));
        done += n;
    }
    int tail = 0;
    ok = ok && handed &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagSize), expected.data()) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), buffer.data(), &tail) == 1 && tail == 0;
    // On success the buffer keeps the last piece: the caller reuses it for
    // the next value and wipes it once (SecureBuffer), rather than once per
    // value (64 MB of memset for 1000 x 64 KiB).
    if (!ok || !handed) OPENSSL_cleanse(buffer.data(), used);
    if (!handed) {
        ERR_clear_error();
        return handed;
    }
    if (!ok) return cannotDecrypt();
    return {};
}

// GCM has no padding: the plaintext is exactly as long as the ciphertext,
// so with `out` as the buffer it is one piece, written only into `out`. On
// a tag mismatch `out` holds unauthenticated bytes: gcmOpenPieces wipes it.
Result<void> gcmOpenInto(std::span<const unsigned char> key, const GcmNonce& nonce,
                         std::span<const unsigned char> ciphertext, const GcmTag& tag,
                         std::span<const unsigned char> aad, std::span<unsigned char> out) {
    if (out.size() != ciphertext.size()) return cannotDecrypt();
    return gcmOpenPieces(key, nonce, ciphertext, tag, aad, out,
                         [](std::span<const unsigned char>) -> Result<void> { return {}; });
}

}  // namespace secretshim::plugin
