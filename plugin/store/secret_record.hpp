// The file format of one stored secret:
//
//   "SSHS1\n"                                     magic and format version
//   {"created":…,"id":"…","name":"…","size":…}\n  metadata, in the clear
//   nonce (12 bytes) | ciphertext (size bytes) | GCM tag (16 bytes)
//
// The metadata stays readable so that listing needs no key. The associated
// data is the header bytes followed by the name the record is opened as, so
// editing the header or renaming the file to another secret's name makes
// decryption fail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

struct SecretMeta {
    std::string name;
    std::string id;            // 32 lowercase hex digits: 128 random bits
    std::uint64_t size = 0;    // plaintext bytes
    std::int64_t created = 0;  // unix seconds

    bool operator==(const SecretMeta&) const = default;
};

inline constexpr std::string_view kRecordMagic = "SSHS1\n";
// Enough for the metadata line: names are at most 64 characters.
inline constexpr std::size_t kMaxRecordHeader = 1024;

// Encrypts plaintext (meta.size bytes) under a fresh nonce into a record.
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
