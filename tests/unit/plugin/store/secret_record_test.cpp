#include <cerrno>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/secret_record.hpp"
#include "store_test_support.hpp"

using namespace secretshim::plugin;
using test::bytesOf;
using test::containsBytes;
using test::sameBytes;

namespace {

const std::string kMarker = "record-MARKER-0c5d8e3a";
const std::vector<unsigned char> kKey(kAesKeySize, 0x42);

SecretMeta meta(const std::string& name) {
    return {name, "0123456789abcdef0123456789abcdef", kMarker.size(), 1700000000};
}

std::string headerText(const std::vector<unsigned char>& record) {
    const std::string all(record.begin(), record.end());
    return all.substr(0, all.find('\n', kRecordMagic.size()) + 1);
}

}  // namespace

TEST_CASE("a record starts with the magic and a JSON metadata line") {
    auto record = sealRecord(meta("db_pass"), kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    CHECK(headerText(*record) ==
          "SSHS1\n{\"created\":1700000000,\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"db_pass\","
          "\"size\":22}\n");
    CHECK(record->size() == headerText(*record).size() + kGcmNonceSize + kMarker.size() + kGcmTagSize);
    CHECK(!containsBytes(*record, kMarker));
}

TEST_CASE("the header parses back without the key") {
    auto record = sealRecord(meta("db_pass"), kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    auto header = parseRecordHeader(*record, record->size());
    REQUIRE(header.has_value());
    CHECK(header->meta == meta("db_pass"));
    CHECK(header->length == headerText(*record).size());
}

TEST_CASE("open gives the plaintext back under the same name only") {
    auto record = sealRecord(meta("db_pass"), kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    auto plain = openRecord(*record, "db_pass", kKey);
    REQUIRE(plain.has_value());
    CHECK(sameBytes(plain->span(), kMarker));

    auto renamed = openRecord(*record, "db_pazz", kKey);
    REQUIRE(!renamed.has_value());
    CHECK(renamed.error().code == EBADMSG);
    CHECK(renamed.error().message == "cannot decrypt (corrupt or tampered)");
}

TEST_CASE("a header rewritten to another name does not decrypt") {
    auto record = sealRecord(meta("aaaa"), kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    std::string all(record->begin(), record->end());
    all.replace(all.find("\"aaaa\""), 6, "\"bbbb\"");
    const std::vector<unsigned char> forged(all.begin(), all.end());
    REQUIRE(parseRecordHeader(forged, forged.size()).has_value());  // still well-formed
    auto plain = openRecord(forged, "bbbb", kKey);
    REQUIRE(!plain.has_value());
    CHECK(plain.error().message == "cannot decrypt (corrupt or tampered)");
}

TEST_CASE("malformed headers are refused") {
    auto record = sealRecord(meta("db_pass"), kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    const auto refusal = [](std::vector<unsigned char> bytes, std::uint64_t size) {
        auto header = parseRecordHeader(bytes, size);
        return header.has_value() ? std::string("accepted") : header.error().message;
    };

    auto badMagic = *record;
    badMagic[0] = 'X';
    CHECK(refusal(badMagic, badMagic.size()) == "not a secretshim record (bad magic)");

    auto newer = *record;
    newer[4] = '2';
    CHECK(refusal(newer, newer.size()) == "unsupported record format version");

    CHECK(refusal(*record, record->size() + 1) == "record size does not match its header");
    CHECK(refusal(*record, record->size() - 1) == "record size does not match its header");

    std::string all(record->begin(), record->end());
    all[kRecordMagic.size()] = '[';
    CHECK(refusal({all.begin(), all.end()}, all.size()) == "corrupt record header (not a JSON object)");

    std::string noNewline = "SSHS1\n{\"name\":\"x\"";
    CHECK(refusal({noNewline.begin(), noNewline.end()}, 100) == "corrupt record header (no end of line)");

    std::string missing = "SSHS1\n{\"name\":\"x\",\"size\":1}\n";
    CHECK(refusal({missing.begin(), missing.end()}, 100) ==
          "corrupt record header (missing or mistyped field)");

    std::string badId = "SSHS1\n{\"created\":1,\"id\":\"XYZ\",\"name\":\"x\",\"size\":1}\n";
    CHECK(refusal({badId.begin(), badId.end()}, 100) == "corrupt record header (invalid field)");
}

TEST_CASE("seal refuses a size that does not match the plaintext") {
    auto wrong = meta("db_pass");
    wrong.size = 3;
    auto record = sealRecord(wrong, kKey, bytesOf(kMarker));
    REQUIRE(!record.has_value());
    CHECK(record.error().message == "sealing a record: the size does not match its metadata");
}
