// The local secret store: one encrypted record per secret in
// <state>/secrets/<name>.secret (see secret_record.hpp), under the node key.
// Metadata is readable without the key; a value is decrypted only by
// load(), into a SecureBuffer.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "mountfs/secrets_view.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/node_key.hpp"
#include "plugin/store/private_path.hpp"
#include "plugin/store/secret_record.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

inline constexpr std::string_view kSecretsSubdir = "secrets";
inline constexpr std::string_view kSecretSuffix = ".secret";
// <name>.grants: who may receive the secret (plugin/identity/grant_rule.hpp).
inline constexpr std::string_view kGrantsSuffix = ".grants";

class LocalStore;

// A task's secrets read from the store but not decrypted: ciphertext, so
// nothing here needs locked memory. Each value's size is known from its
// record's header; decryptTo() decrypts one, through a small locked buffer
// reused for every value, piece by piece into wherever the caller writes
// it (the view's file). The records of a small task are held from the
// first read; past a budget a record is read again when its turn comes
// (holding 64 MB of ciphertext for 1000 x 64 KiB cost more in page faults
// than reading each file twice).
class SealedSecrets {
public:
    // What one decryption at a time uses: the locked buffer (allocated on
    // first use, wiped when this goes) and a record read again. Two threads
    // may decrypt at once, each with its own.
    struct Workspace {
        SecureBuffer buffer;
        std::vector<unsigned char> scratch;
    };

    std::size_t count() const { return entries_.size(); }
    std::size_t size(std::size_t index) const { return entries_[index].header.meta.size; }
    // Hands value `index` to `piece` (see gcmOpenPieces: what `piece` got is
    // unauthenticated until this succeeds; on failure the caller wipes it).
    // Errors are load()'s lines.
    Result<void> decryptTo(std::size_t index, const GcmPiece& piece) const { return decryptTo(index, piece, own_); }
    Result<void> decryptTo(std::size_t index, const GcmPiece& piece, Workspace& workspace) const;

private:
    friend class LocalStore;
    struct Entry {
        RecordHeader header;     // as read first (checked as load() does)
        std::size_t offset = 0;  // of its record in held_
        std::size_t length = 0;  // 0: not held, read again
    };
    explicit SealedSecrets(const LocalStore& store) : store_(&store) {}

    const LocalStore* store_;
    std::vector<Entry> entries_;
    std::vector<unsigned char> held_;
    mutable Workspace own_;
};

// A view's payloads from sealed secrets: entry i of the view holds secret
// which[i] (a secret used by two references is decrypted for each).
class SealedPayloads final : public mountfs::PayloadSource {
public:
    SealedPayloads(const SealedSecrets& sealed, std::vector<std::size_t> which)
        : sealed_(sealed), which_(std::move(which)) {}
    std::size_t count() const override { return which_.size(); }
    std::size_t size(std::size_t index) const override { return sealed_.size(which_[index]); }
    Result<void> produce(std::size_t index, mountfs::PayloadSink& sink) const override {
        return sealed_.decryptTo(
            which_[index], [&sink](std::span<const unsigned char> piece) { return sink.write(piece); }, workspace_);
    }
    std::unique_ptr<mountfs::PayloadSource> concurrentCopy() const override {
        return std::make_unique<SealedPayloads>(sealed_, which_);
    }

private:
    const SealedSecrets& sealed_;
    std::vector<std::size_t> which_;
    mutable SealedSecrets::Workspace workspace_;
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
    // oversized value, labels checkLabels() refuses and an existing name.
    Result<SecretMeta> create(std::string_view name, mountfs::Bytes plaintext, const SecretLabels& labels = {});
    // Replaces a secret's value: a new record under the same node key,
    // renamed over the old one (a reader or a crash sees the old record or
    // the new one), with the same id, creation time and labels (so its
    // grants still apply), its version one more and `updated` now. The old
    // record is authenticated first (its plaintext wiped at once): a header
    // edited on disk is not sealed again. Refuses an invalid name, an empty
    // or oversized value and a secret that does not exist.
    Result<SecretMeta> rotate(std::string_view name, mountfs::Bytes plaintext);
    // Every secret's metadata, sorted by name; decrypts nothing.
    Result<std::vector<SecretMeta>> list() const;
    Result<SecretMeta> inspect(std::string_view name) const;
    // Removes a secret and its grants (the grants first: a crash between
    // the two leaves a secret that reaches nobody, never grants waiting for
    // a new secret of the same name).
    Result<void> remove(std::string_view name);
    // A secret's grant rules, as text: the store keeps them, the agent
    // parses them. They belong to one secret id: rules written for an
    // earlier secret of the same name are not returned. No file: none.
    Result<std::vector<std::string>> readGrants(std::string_view name, std::string_view secretId) const;
    // Replaces them (an empty list removes the file).
    Result<void> writeGrants(std::string_view name, std::string_view secretId, const std::vector<std::string>& rules);
    // Decrypts one secret's value.
    Result<SecureBuffer> load(std::string_view name) const;
    // Reads several secrets' records, decrypting nothing yet (SealedSecrets).
    // Every error a record can have but a failed tag is reported here, before
    // anything is decrypted: missing, unreadable, corrupt header, over the limit.
    Result<SealedSecrets> readMany(std::span<const std::string> names) const;

    const std::string& secretsDir() const { return dirPath_; }

private:
    friend class SealedSecrets;
    LocalStore(platform::UniqueFd dir, std::string dirPath, NodeKey key, StoreOptions options)
        : dir_(std::move(dir)), dirPath_(std::move(dirPath)), key_(std::move(key)), options_(options) {}

    Result<RecordHeader> readHeader(std::string_view name, int fd, std::uint64_t fileSize) const;
    // The whole record (ciphertext) and its header, checked as load() does.
    Result<RecordHeader> readRecord(std::string_view name, std::vector<unsigned char>& record) const;
    // What readRecord() does with an open record file: the whole record into
    // `record` (file.size bytes), or only its header (checkedHeader()); both
    // refuse a header that is corrupt, names another secret or is over the
    // limit with load()'s lines.
    Result<RecordHeader> readWhole(std::string_view name, const OpenedFile& file, const std::string& label,
                                   std::span<unsigned char> record) const;
    Result<RecordHeader> checkedHeader(std::string_view name, const OpenedFile& file) const;
    // A secret's record file, opened as private (ENOENT: "does not exist").
    Result<OpenedFile> openRecordFile(std::string_view name, const std::string& label) const;
    // readMany()'s work for some of the names, appended to `into`, holding
    // whole records up to `holdBudget` bytes; gives up early once `stop`.
    Result<void> readRecords(std::span<const std::string> names, std::size_t holdBudget, SealedSecrets& into,
                             std::atomic<bool>& stop) const;

    platform::UniqueFd dir_;
    std::string dirPath_;
    NodeKey key_;
    StoreOptions options_;
};

}  // namespace secretshim::plugin
