// Envelope encryption of cluster secrets (OpenSSL 3 EVP).
//
// Per-node copy: a fresh ephemeral X25519 key pair per copy; the shared
// secret ECDH(ephemeral, node public key) goes through HKDF-SHA256 (salt:
// both public keys) to an AES-256-GCM key. The associated data binds the
// node name, the secret's name, id and version, so a copy moved to another
// key, node or version does not decrypt.
//
// Master copy: AES-256-GCM under the cluster key (256 random bits that only
// admins hold), with the name, id and version as associated data.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"
#include "plugin/cluster/model.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::cluster {

using plugin::SecureBuffer;

inline constexpr std::size_t kX25519KeySize = 32;
using PublicKey = std::array<unsigned char, kX25519KeySize>;

// What a sealed value is bound to.
struct SecretBinding {
    std::string node;  // empty for the master copy
    std::string name;
    std::string id;
    std::uint64_t version = 0;
};

// A node's X25519 key pair, to which its copies of the cluster's secrets
// are sealed; the private half lives in a SecureBuffer. Not the local
// store's node key (plugin/store/node_key.hpp, node.key): this one is
// <state_dir>/cluster-node.key.
inline constexpr std::string_view kNodeKeyPairFile = "cluster-node.key";
// The node's next key pair while its key is rotated (node keygen --rotate;
// --promote makes it the key pair).
inline constexpr std::string_view kNextNodeKeyPairFile = "cluster-node.key.next";
class NodeKeyPair {
public:
    static Result<NodeKeyPair> generate();
    // Loads <dir>/<file> (32 raw bytes, 0600, owned by us), creating it
    // when missing.
    static Result<NodeKeyPair> loadOrCreate(const std::string& dir, const std::string& file);
    // The same, never creating it (code ENOENT when missing).
    static Result<NodeKeyPair> load(const std::string& dir, const std::string& file);
    static Result<NodeKeyPair> fromPrivate(std::span<const unsigned char> raw);

    const PublicKey& publicKey() const { return public_; }
    std::span<const unsigned char> privateKey() const { return private_.span(); }
    // Decrypts a per-node copy into locked memory.
    Result<SecureBuffer> open(const SealedValue& sealed, const SecretBinding& binding) const;

private:
    NodeKeyPair(SecureBuffer priv, const PublicKey& pub) : private_(std::move(priv)), public_(pub) {}
    SecureBuffer private_;
    PublicKey public_{};
};

Result<SealedValue> sealForNode(std::span<const unsigned char> nodePublicKey, std::span<const unsigned char> plaintext,
                                const SecretBinding& binding);

// The cluster key: 32 random bytes in a 0600 file.
class ClusterKey {
public:
    static Result<ClusterKey> loadOrCreate(const std::string& path);
    static Result<ClusterKey> load(const std::string& path);
    Result<SealedValue> seal(std::span<const unsigned char> plaintext, const SecretBinding& binding) const;
    Result<SecureBuffer> open(const SealedValue& sealed, const SecretBinding& binding) const;

private:
    explicit ClusterKey(SecureBuffer key) : key_(std::move(key)) {}
    SecureBuffer key_;
};

// The associated data of a sealed value (exposed for tests).
std::string associatedData(const SecretBinding& binding);

}  // namespace secretshim::cluster
