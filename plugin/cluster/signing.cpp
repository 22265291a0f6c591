#include "plugin/cluster/signing.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "mountfs/base/hex.hpp"
#include "plugin/store/private_path.hpp"

namespace secretshim::cluster {

namespace {

struct CtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, CtxFree>;

struct FileClose {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

Result<std::string> rawPublic(EVP_PKEY* key, const std::string& what) {
    if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) return fail(what + " is not an Ed25519 key");
    std::string raw(kEd25519KeySize, '\0');
    std::size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
        len != kEd25519KeySize)
        return fail(what + ": cannot read its public key");
    return raw;
}

// Reads one PEM key from `path`: private (PKCS#8) or public (SPKI).
Result<PkeyPtr> readPem(const std::string& path, bool isPrivate, const std::string& what) {
    std::unique_ptr<std::FILE, FileClose> f(std::fopen(path.c_str(), "re"));
    if (!f) return failErrno("cannot read " + what);
    PkeyPtr key(isPrivate ? PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr)
                          : PEM_read_PUBKEY(f.get(), nullptr, nullptr, nullptr));
    if (!key)
        return fail(what + " is not a PEM " + (isPrivate ? "private" : "public") +
                    " key (make one with: openssl genpkey -algorithm ed25519)");
    return key;
}

}  // namespace

void PkeyFree::operator()(evp_pkey_st* key) const { EVP_PKEY_free(key); }

std::string keyId(std::string_view rawPublicKey) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(rawPublicKey.data(), rawPublicKey.size(), digest, &len, EVP_sha256(), nullptr);
    return hexEncode({digest, std::min(len, 8u)});
}

std::uint64_t nextSerial(std::uint64_t above) {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return std::max<std::uint64_t>(static_cast<std::uint64_t>(std::max<std::int64_t>(now, 0)), above + 1);
}

AdminSigningKey::AdminSigningKey(PkeyPtr key, std::string pub)
    : key_(std::move(key)), public_(std::move(pub)), id_(keyId(public_)) {}

Result<AdminSigningKey> AdminSigningKey::load(const std::string& path) {
    const std::string what = "the admin signing key " + path;
    if (auto ok = plugin::checkPrivateFile(path, what); !ok) return propagate(ok);
    auto key = readPem(path, true, what);
    if (!key) return propagate(key);
    auto pub = rawPublic(key->get(), what);
    if (!pub) return propagate(pub);
    return AdminSigningKey(std::move(*key), std::move(*pub));
}

Result<std::string> AdminSigningKey::signMessage(const std::string& message) const {
    MdCtx ctx(EVP_MD_CTX_new());
    std::string sig(kEd25519SignatureSize, '\0');
    std::size_t len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, bytes(message), message.size()) !=
            1 ||
        len != kEd25519SignatureSize)
        return fail("signing a record with the admin key failed (OpenSSL)");
    return sig;
}

Result<TrustedKeys> TrustedKeys::load(const std::vector<std::string>& paths) {
    TrustedKeys keys;
    for (const auto& path : paths) {
        const std::string what = "the admin public key " + path;
        auto key = readPem(path, false, what);
        if (!key) return propagate(key);
        auto pub = rawPublic(key->get(), what);
        if (!pub) return propagate(pub);
        keys.add(*pub);
    }
    return keys;
}

void TrustedKeys::add(const std::string& rawPublicKey) {
    const std::string id = keyId(rawPublicKey);
    if (std::any_of(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == id; })) return;
    std::shared_ptr<evp_pkey_st> pkey(
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes(rawPublicKey), rawPublicKey.size()),
        PkeyFree{});
    if (pkey) keys_.push_back({id, std::move(pkey)});
}

Result<void> TrustedKeys::verifyMessage(const std::string& message, const Signed& sig) const {
    if (sig.signer.empty() || sig.signature.empty()) return fail("not signed by an admin key");
    const auto key = std::find_if(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == sig.signer; });
    if (key == keys_.end()) return fail("signed by an unknown key " + quote(sig.signer) + " (not in etcd.admin_keys)");
    MdCtx ctx(EVP_MD_CTX_new());
    if (ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key->pkey.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), bytes(sig.signature), sig.signature.size(), bytes(message), message.size()) == 1)
        return {};
    return fail("its signature does not verify (signer " + sig.signer + ")");
}

}  // namespace secretshim::cluster
