// Signed cluster data (docs/cluster.md, "Signed records"). Whoever can write
// to etcd (a stolen admin credential, one bad member) could otherwise put
// any record a node reads: a per-node copy is sealed to the node's public
// key, which anyone can do, and a task record is plain JSON. So every
// record a node acts on (its task records, its secret copies) and every
// node registration the admin CLI seals copies to is signed by an admin's
// Ed25519 key (OpenSSL EVP), over the record's fields and its etcd key
// (signedMessage() in model.hpp): a record moved to another key, or with
// any field changed, does not verify.
//
// The key pair is made with the openssl CLI (PEM, PKCS#8):
//   openssl genpkey -algorithm ed25519 -out admin-signing.key
//   openssl pkey -in admin-signing.key -pubout -out admin-signing.pub
// The admin CLI signs with the private half (etcd.signing_key); every node
// trusts the public halves listed in its etcd.admin_keys.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/cluster/model.hpp"

struct evp_pkey_st;

namespace secretshim::cluster {

inline constexpr std::size_t kEd25519KeySize = 32;
inline constexpr std::size_t kEd25519SignatureSize = 64;

// A key's short name in records and logs: the first 8 bytes of the SHA-256
// of its raw public key, in hex.
std::string keyId(std::string_view rawPublicKey);

// A serial above `above`: the time in microseconds (so that a record put
// back after a delete, when the admin cannot read the one it replaces,
// still gets a higher serial than any earlier one), or above + 1 when the
// clock is behind.
std::uint64_t nextSerial(std::uint64_t above);

struct PkeyFree {
    void operator()(evp_pkey_st* key) const;
};
using PkeyPtr = std::unique_ptr<evp_pkey_st, PkeyFree>;

// The admin's private signing key (a PEM file only its owner may read).
class AdminSigningKey {
public:
    static Result<AdminSigningKey> load(const std::string& path);
    const std::string& publicKey() const { return public_; }  // raw 32 bytes
    const std::string& id() const { return id_; }
    // Signs `record` (at etcd key `key`) with `serial`.
    template <class Record>
    Result<void> sign(std::string_view key, Record& record, std::uint64_t serial) const {
        record.sig.serial = serial;
        record.sig.signer = id_;
        auto signature = signMessage(signedMessage(key, record));
        if (!signature) return propagate(signature);
        record.sig.signature = std::move(*signature);
        return {};
    }

private:
    AdminSigningKey(PkeyPtr key, std::string pub);
    Result<std::string> signMessage(const std::string& message) const;
    PkeyPtr key_;
    std::string public_;
    std::string id_;
};

// The admin public keys a node (or the admin CLI) trusts. More than one
// while the admin key is rotated (docs/cluster.md).
class TrustedKeys {
public:
    // Each file: an Ed25519 public key in PEM ("-----BEGIN PUBLIC KEY-----").
    static Result<TrustedKeys> load(const std::vector<std::string>& paths);
    void add(const std::string& rawPublicKey);
    bool empty() const { return keys_.empty(); }
    // "not signed", "signed by an unknown key ID" or "its signature does not
    // verify (signed by ID)".
    template <class Record>
    Result<void> verify(std::string_view key, const Record& record) const {
        return verifyMessage(signedMessage(key, record), record.sig);
    }

private:
    Result<void> verifyMessage(const std::string& message, const Signed& sig) const;
    struct Key {
        std::string id;
        std::shared_ptr<evp_pkey_st> pkey;
    };
    std::vector<Key> keys_;
};

}  // namespace secretshim::cluster
