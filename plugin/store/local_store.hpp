// The local secret store: one encrypted record per secret in
// <state>/secrets/<name>.secret (see secret_record.hpp), under the node key.
// Metadata is readable without the key; a value is decrypted only by
// load(), into a SecureBuffer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "mountfs/secrets_view.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/store/node_key.hpp"
#include "plugin/store/secret_record.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

inline constexpr std::string_view kSecretsSubdir = "secrets";
inline constexpr std::string_view kSecretSuffix = ".secret";

// Several values decrypted into a few large SecureBuffers: values[i] is the
// value of the i-th name asked for.
struct LoadedSecrets {
    std::vector<SecureBuffer> buffers;
    std::vector<mountfs::Bytes> values;
};

struct StoreOptions {
    std::size_t maxPayload = mountfs::kDefaultMaxPayload;
};

class LocalStore {
public:
    // Opens (creating if missing) the state directory, its node key and its
    // secrets/ directory (0700; refused if group/other-accessible).
    static Result<LocalStore> open(const std::string& stateDir, StoreOptions options = {});

    // Encrypts and stores a new secret. Refuses an invalid name, an empty or
    // oversized value and an existing name.
    Result<SecretMeta> create(std::string_view name, mountfs::Bytes plaintext);
    // Every secret's metadata, sorted by name; decrypts nothing.
    Result<std::vector<SecretMeta>> list() const;
    Result<SecretMeta> inspect(std::string_view name) const;
    Result<void> remove(std::string_view name);
    // Decrypts one secret's value.
    Result<SecureBuffer> load(std::string_view name) const;
    // Decrypts several secrets into a few locked buffers (16 KiB doubling up
    // to 1 MiB, or one value's size): one mapping and one mlock for many
    // values rather than one per secret. Same errors as load().
    Result<LoadedSecrets> loadMany(std::span<const std::string> names) const;

    const std::string& secretsDir() const { return dirPath_; }

private:
    LocalStore(platform::UniqueFd dir, std::string dirPath, NodeKey key, StoreOptions options)
        : dir_(std::move(dir)), dirPath_(std::move(dirPath)), key_(std::move(key)), options_(options) {}

    Result<RecordHeader> readHeader(std::string_view name, int fd, std::uint64_t fileSize) const;
    // The whole record (ciphertext) and its header, checked as load() does.
    Result<RecordHeader> readRecord(std::string_view name, std::vector<unsigned char>& record) const;

    platform::UniqueFd dir_;
    std::string dirPath_;
    NodeKey key_;
    StoreOptions options_;
};

}  // namespace secretshim::plugin
