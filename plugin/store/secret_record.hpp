// The file format of one stored secret:
//
//   "SSHS1\n"                                     magic and format version
//   {"created":…,"id":"…","name":"…","size":…,    metadata, in the clear
//    "updated":…,"version":…,"labels":{…}}\n     (optional: older records
//                                                  lack them, see SecretMeta)
//   nonce (12 bytes) | ciphertext (size bytes) | GCM tag (16 bytes)
//
// The metadata stays readable so that listing needs no key. The associated
// data is the header bytes followed by the name the record is opened as, so
// editing the header or renaming the file to another secret's name makes
// decryption fail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

// An admin's labels on a secret (secretshimctl secret create --label K=V),
// as Docker's: metadata to find secrets by, never part of the value.
using SecretLabels = std::map<std::string, std::string>;

inline constexpr std::size_t kMaxLabels = 16;
inline constexpr std::size_t kMaxLabelKey = 64;
inline constexpr std::size_t kMaxLabelValue = 256;
inline constexpr std::size_t kMaxLabelBytes = 1024;  // keys and values together

// A key is 1 to kMaxLabelKey of [A-Za-z0-9._/-]; a value up to
// kMaxLabelValue printable ASCII characters (maybe none); at most kMaxLabels
// labels of at most kMaxLabelBytes together (what bounds a record's header
// and a listing). One line naming the label otherwise.
Result<void> checkLabels(const SecretLabels& labels);
// "KEY=VALUE" or "KEY" (an empty value), as --label takes it; checked.
Result<std::pair<std::string, std::string>> parseLabel(std::string_view text);

struct SecretMeta {
    std::string name;
    std::string id;            // 32 lowercase hex digits: 128 random bits
    std::uint64_t size = 0;    // plaintext bytes
    std::int64_t created = 0;  // unix seconds
    // A record written before rotation and labels existed reads as version
    // 1, updated when created, no labels.
    std::uint64_t version = 1;  // 1 at create, one more at each rotation
    std::int64_t updated = 0;   // unix seconds of the last create or rotation
    SecretLabels labels;

    bool operator==(const SecretMeta&) const = default;
};

inline constexpr std::string_view kRecordMagic = "SSHS1\n";
// Enough for the metadata line: names are at most 64 characters, labels
// at most kMaxLabelBytes (twice that if every character were escaped).
inline constexpr std::size_t kMaxRecordHeader = 4096;

// Encrypts plaintext (meta.size bytes) under a fresh nonce into a record.
// Refuses labels checkLabels() refuses.
Result<std::vector<unsigned char>> sealRecord(const SecretMeta& meta, std::span<const unsigned char> key,
                                              std::span<const unsigned char> plaintext);

struct RecordHeader {
    SecretMeta meta;
    std::size_t length = 0;  // bytes of the magic and metadata lines
};

// Parses the header from the first bytes of a record (kMaxRecordHeader, or
// the whole record if shorter) and checks that a record of fileSize bytes
// has room for exactly meta.size bytes of ciphertext. Errors have EBADMSG.
Result<RecordHeader> parseRecordHeader(std::span<const unsigned char> prefix, std::uint64_t fileSize);

// Decrypts a whole record read as secret `name`. Every failure is
// Error{EBADMSG, "cannot decrypt (corrupt or tampered)"}.
Result<SecureBuffer> openRecord(std::span<const unsigned char> record, std::string_view name,
                                std::span<const unsigned char> key);
// The parts of a record whose `header` was parsed from it (so its sizes
// fit the record), for a caller that decrypts it itself: openRecord(), or
// the store in pieces (gcmOpenPieces).
struct RecordParts {
    GcmNonce nonce{};
    std::span<const unsigned char> ciphertext;
    GcmTag tag{};
    std::vector<unsigned char> aad;
};
RecordParts recordParts(std::span<const unsigned char> record, const RecordHeader& header);

}  // namespace secretshim::plugin
