// plugin/store/aes_gcm.hpp for Windows through CNG (BCrypt): the same
// AES-256-GCM (96-bit nonce, 128-bit tag, associated data) as the OpenSSL
// version, so a record sealed on one side opens on the other. Debian has
// no OpenSSL for mingw; CNG ships with every Windows (and wine 8's bcrypt
// implements GCM through GnuTLS).
#include "plugin/store/aes_gcm.hpp"

#include <windows.h>
#include <bcrypt.h>

#include <cerrno>
#include <climits>

namespace secretshim::plugin {
namespace {

bool fitsUlong(std::size_t n) { return n <= static_cast<std::size_t>(ULONG_MAX); }

// An AES-GCM key handle; the provider handle only lives as long as needed
// to make it (CNG keeps its own reference).
class GcmKey {
public:
    GcmKey() = default;
    GcmKey(const GcmKey&) = delete;
    GcmKey& operator=(const GcmKey&) = delete;
    ~GcmKey() {
        if (key_ != nullptr) ::BCryptDestroyKey(key_);  // zeroes the key schedule
        if (alg_ != nullptr) ::BCryptCloseAlgorithmProvider(alg_, 0);
    }
    bool init(std::span<const unsigned char> key) {
        if (!BCRYPT_SUCCESS(::BCryptOpenAlgorithmProvider(&alg_, BCRYPT_AES_ALGORITHM, nullptr, 0))) return false;
        if (!BCRYPT_SUCCESS(::BCryptSetProperty(alg_, BCRYPT_CHAINING_MODE,
                                                reinterpret_cast<PUCHAR>(const_cast<wchar_t*>(BCRYPT_CHAIN_MODE_GCM)),
                                                sizeof(BCRYPT_CHAIN_MODE_GCM), 0)))
            return false;
        return BCRYPT_SUCCESS(::BCryptGenerateSymmetricKey(alg_, &key_, nullptr, 0, const_cast<PUCHAR>(key.data()),
                                                           static_cast<ULONG>(key.size()), 0));
    }
    BCRYPT_KEY_HANDLE get() const { return key_; }

private:
    BCRYPT_ALG_HANDLE alg_ = nullptr;
    BCRYPT_KEY_HANDLE key_ = nullptr;
};

BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO modeInfo(const GcmNonce& nonce, GcmTag& tag,
                                               std::span<const unsigned char> aad) {
    BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO info;
    BCRYPT_INIT_AUTH_MODE_INFO(info);
    info.pbNonce = const_cast<PUCHAR>(nonce.data());
    info.cbNonce = static_cast<ULONG>(nonce.size());
    info.pbAuthData = aad.empty() ? nullptr : const_cast<PUCHAR>(aad.data());
    info.cbAuthData = static_cast<ULONG>(aad.size());
    info.pbTag = tag.data();
    info.cbTag = static_cast<ULONG>(tag.size());
    return info;
}

tl::unexpected<Error> cannotDecrypt() { return failWith(EBADMSG, "cannot decrypt"); }

}  // namespace

Result<GcmSealed> gcmSeal(std::span<const unsigned char> key, std::span<const unsigned char> plaintext,
                          std::span<const unsigned char> aad) {
    if (key.size() != kAesKeySize) return fail("encrypting: the key is not 256 bits");
    if (!fitsUlong(plaintext.size()) || !fitsUlong(aad.size())) return fail("encrypting: input too large");
    GcmSealed out;
    if (!BCRYPT_SUCCESS(::BCryptGenRandom(nullptr, out.nonce.data(), static_cast<ULONG>(out.nonce.size()),
                                          BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
        return fail("encrypting: the system random generator failed");
    out.ciphertext.resize(plaintext.size());
    GcmKey gcm;
    if (!gcm.init(key)) return fail("encrypting: CNG AES-256-GCM is not available");
    auto info = modeInfo(out.nonce, out.tag, aad);
    ULONG written = 0;
    const NTSTATUS status =
        ::BCryptEncrypt(gcm.get(), const_cast<PUCHAR>(plaintext.data()), static_cast<ULONG>(plaintext.size()),
                        &info, nullptr, 0, out.ciphertext.data(), static_cast<ULONG>(out.ciphertext.size()),
                        &written, 0);
    if (!BCRYPT_SUCCESS(status) || written != plaintext.size()) return fail("encrypting: CNG AES-256-GCM failed");
    return out;
}

Result<void> gcmOpenInto(std::span<const unsigned char> key, const GcmNonce& nonce,
                         std::span<const unsigned char> ciphertext, const GcmTag& tag,
                         std::span<const unsigned char> aad, std::span<unsigned char> out) {
    if (key.size() != kAesKeySize || ciphertext.empty() || out.size() != ciphertext.size() ||
        !fitsUlong(ciphertext.size()) || !fitsUlong(aad.size()))
        return cannotDecrypt();
    GcmKey gcm;
    if (!gcm.init(key)) return fail("decrypting: CNG AES-256-GCM is not available");
    GcmTag expected = tag;
    auto info = modeInfo(nonce, expected, aad);
    ULONG written = 0;
    const NTSTATUS status = ::BCryptDecrypt(gcm.get(), const_cast<PUCHAR>(ciphertext.data()),
                                            static_cast<ULONG>(ciphertext.size()), &info, nullptr, 0,
                                            out.data(), static_cast<ULONG>(out.size()), &written, 0);
    if (!BCRYPT_SUCCESS(status) || written != ciphertext.size()) {
        // On a tag mismatch (STATUS_AUTH_TAG_MISMATCH) the buffer may hold
        // unauthenticated bytes.
        ::SecureZeroMemory(out.data(), out.size());
        return cannotDecrypt();
    }
    return {};
}

}  // namespace secretshim::plugin
