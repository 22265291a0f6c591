#include "plugin/cluster/envelope.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/node_key.hpp"
#include "plugin/store/private_path.hpp"

namespace secretshim::cluster {
namespace {

using plugin::GcmNonce;
using plugin::GcmTag;

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct KdfFree {
    void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxFree {
    void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

constexpr std::string_view kHkdfInfo = "secretshim/v1 node copy";

std::span<const unsigned char> bytesOf(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

tl::unexpected<Error> opensslFailed(const std::string& what) {
    ERR_clear_error();
    return fail(what + ": OpenSSL failed");
}

Result<PublicKey> rawPublic(EVP_PKEY* key) {
    PublicKey pub{};
    std::size_t len = pub.size();
    if (EVP_PKEY_get_raw_public_key(key, pub.data(), &len) != 1 || len != pub.size())
        return opensslFailed("reading an X25519 public key");
    return pub;
}

// ECDH(priv, peer) → HKDF-SHA256(salt = epk || node public key) → 32 bytes.
Result<SecureBuffer> deriveKey(EVP_PKEY* priv, std::span<const unsigned char> peerPublic,
                               std::span<const unsigned char> epk, std::span<const unsigned char> nodePublic) {
    Pkey peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peerPublic.data(), peerPublic.size()));
    if (!peer) return opensslFailed("reading the peer's X25519 key");
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(priv, nullptr));
    auto shared = SecureBuffer::allocate(kX25519KeySize);
    if (!shared) return propagate(shared);
    std::size_t len = shared->size();
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
        EVP_PKEY_derive(ctx.get(), shared->data(), &len) != 1 || len != kX25519KeySize)
        return opensslFailed("X25519 key agreement");

    std::string salt(reinterpret_cast<const char*>(epk.data()), epk.size());
    salt.append(reinterpret_cast<const char*>(nodePublic.data()), nodePublic.size());
    std::unique_ptr<EVP_KDF, KdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
    std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> kctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
    auto key = SecureBuffer::allocate(plugin::kAesKeySize);
    if (!key) return propagate(key);
    char digest[] = "SHA256";
    std::string info(kHkdfInfo);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared->data(), shared->size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt.data(), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
        OSSL_PARAM_construct_end(),
    };
    if (!kctx || EVP_KDF_derive(kctx.get(), key->data(), key->size(), params) != 1) return opensslFailed("HKDF-SHA256");
    return key;
}

Result<SealedValue> gcmToSealed(Result<plugin::GcmSealed> gcm) {
    if (!gcm) return propagate(gcm);
    SealedValue s;
    s.nonce.assign(reinterpret_cast<const char*>(gcm->nonce.data()), gcm->nonce.size());
    s.ciphertext.assign(reinterpret_cast<const char*>(gcm->ciphertext.data()), gcm->ciphertext.size());
    s.tag.assign(reinterpret_cast<const char*>(gcm->tag.data()), gcm->tag.size());
    return s;
}

Result<SecureBuffer> gcmOpenSealed(std::span<const unsigned char> key, const SealedValue& s, const std::string& aad) {
    if (s.nonce.size() != plugin::kGcmNonceSize || s.tag.size() != plugin::kGcmTagSize)
        return failWith(EBADMSG, "cannot decrypt");
    GcmNonce nonce{};
    GcmTag tag{};
    std::memcpy(nonce.data(), s.nonce.data(), nonce.size());
    std::memcpy(tag.data(), s.tag.data(), tag.size());
    return plugin::gcmOpen(key, nonce, bytesOf(s.ciphertext), tag, bytesOf(aad));
}

Result<SecureBuffer> readKeyFile(const std::string& dir, const std::string& file, const std::string& label,
                                 std::size_t size) {
    auto dirFd = plugin::openOrCreateDir(AT_FDCWD, dir, "directory " + dir, plugin::DirAccess::any);
    if (!dirFd) return propagate(dirFd);
    return plugin::readKeyFile(dirFd->get(), file, label, size);
}

Result<SecureBuffer> loadOrCreateKeyFile(const std::string& dir, const std::string& file, const std::string& label,
                                         std::size_t size) {
    auto dirFd = plugin::openOrCreateDir(AT_FDCWD, dir, "directory " + dir, plugin::DirAccess::any);
    if (!dirFd) return propagate(dirFd);
    return plugin::loadOrCreateKeyFile(dirFd->get(), dir, file, label, size);
}

std::pair<std::string, std::string> splitPath(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return {".", path};
    return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

std::string associatedData(const SecretBinding& b) {
    std::string aad = b.node.empty() ? "secretshim/v1 master" : "secretshim/v1 node";
    for (const std::string* part : {&b.node, &b.name, &b.id}) {
        aad += '\0';
        aad += *part;
    }
    aad += '\0';
    aad += std::to_string(b.version);
    return aad;
}

Result<NodeKeyPair> NodeKeyPair::fromPrivate(std::span<const unsigned char> raw) {
    if (raw.size() != kX25519KeySize) return fail("an X25519 private key is 32 bytes");
    Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, raw.data(), raw.size()));
    if (!key) return opensslFailed("reading the node's X25519 key");
    auto pub = rawPublic(key.get());
    if (!pub) return propagate(pub);
    auto priv = SecureBuffer::allocate(kX25519KeySize);
    if (!priv) return propagate(priv);
    std::memcpy(priv->data(), raw.data(), raw.size());
    return NodeKeyPair(std::move(*priv), *pub);
}

Result<NodeKeyPair> NodeKeyPair::generate() {
    auto raw = SecureBuffer::allocate(kX25519KeySize);
    if (!raw) return propagate(raw);
    if (RAND_priv_bytes(raw->data(), static_cast<int>(raw->size())) != 1)
        return fail("creating a node key pair: the OpenSSL random generator failed");
    return fromPrivate(raw->span());  // X25519 clamps any 32 bytes
}

Result<NodeKeyPair> NodeKeyPair::loadOrCreate(const std::string& dir, const std::string& file) {
    auto raw = loadOrCreateKeyFile(dir, file, "node key pair " + dir + "/" + file, kX25519KeySize);
    if (!raw) return propagate(raw);
    return fromPrivate(raw->span());
}

Result<NodeKeyPair> NodeKeyPair::load(const std::string& dir, const std::string& file) {
    auto raw = readKeyFile(dir, file, "node key pair " + dir + "/" + file, kX25519KeySize);
    if (!raw) return propagate(raw);
    return fromPrivate(raw->span());
}

Result<SecureBuffer> NodeKeyPair::open(const SealedValue& sealed, const SecretBinding& binding) const {
    if (sealed.epk.size() != kX25519KeySize) return failWith(EBADMSG, "cannot decrypt");
    Pkey priv(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_.data(), private_.size()));
    if (!priv) return opensslFailed("reading the node's X25519 key");
    auto key = deriveKey(priv.get(), bytesOf(sealed.epk), bytesOf(sealed.epk), public_);
    if (!key) return propagate(key);
    return gcmOpenSealed(key->span(), sealed, associatedData(binding));
}

Result<SealedValue> sealForNode(std::span<const unsigned char> nodePublicKey, std::span<const unsigned char> plaintext,
                                const SecretBinding& binding) {
    if (nodePublicKey.size() != kX25519KeySize) return fail("a node's public key is 32 bytes");
    if (binding.node.empty()) return fail("a per-node copy needs the node's name");
    auto ephemeral = NodeKeyPair::generate();
    if (!ephemeral) return propagate(ephemeral);
    Pkey priv(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, ephemeral->privateKey().data(),
                                           ephemeral->privateKey().size()));
    if (!priv) return opensslFailed("reading the ephemeral key");
    const PublicKey& epk = ephemeral->publicKey();
    auto key = deriveKey(priv.get(), nodePublicKey, epk, nodePublicKey);
    if (!key) return propagate(key);
    auto sealed = gcmToSealed(plugin::gcmSeal(key->span(), plaintext, bytesOf(associatedData(binding))));
    if (!sealed) return propagate(sealed);
    sealed->epk.assign(reinterpret_cast<const char*>(epk.data()), epk.size());
    return sealed;
}

Result<ClusterKey> ClusterKey::loadOrCreate(const std::string& path) {
    const auto [dir, file] = splitPath(path);
    auto key = loadOrCreateKeyFile(dir, file, "cluster key " + path, plugin::kAesKeySize);
    if (!key) return propagate(key);
    return ClusterKey(std::move(*key));
}

Result<ClusterKey> ClusterKey::load(const std::string& path) {
    const auto [dir, file] = splitPath(path);
    auto key = readKeyFile(dir, file, "cluster key " + path, plugin::kAesKeySize);
    if (!key) return propagate(key);
    return ClusterKey(std::move(*key));
}

Result<SealedValue> ClusterKey::seal(std::span<const unsigned char> plaintext, const SecretBinding& binding) const {
    return gcmToSealed(plugin::gcmSeal(key_.span(), plaintext, bytesOf(associatedData(binding))));
}

Result<SecureBuffer> ClusterKey::open(const SealedValue& sealed, const SecretBinding& binding) const {
    return gcmOpenSealed(key_.span(), sealed, associatedData(binding));
}

}  // namespace secretshim::cluster
