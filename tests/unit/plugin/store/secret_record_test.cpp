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
    return {name, "0123456789abcdef0123456789abcdef", kMarker.size(), 1700000000, 1, 0, {}};
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
          "\"size\":22,\"updated\":0,\"version\":1}\n");
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

TEST_CASE("labels, version and update time round-trip through the header; labels are authenticated") {
    SecretMeta labelled = meta("db_pass");
    labelled.version = 7;
    labelled.updated = 1700000500;
    labelled.labels = {{"tier", "db"}, {"com.example/team", "payments team"}, {"empty", ""}};
    auto record = sealRecord(labelled, kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    auto header = parseRecordHeader(*record, record->size());
    REQUIRE(header.has_value());
    CHECK(header->meta == labelled);
    auto plain = openRecord(*record, "db_pass", kKey);
    REQUIRE(plain.has_value());
    CHECK(sameBytes(plain->span(), kMarker));

    // A label edited on disk still parses, but the record no longer opens.
    std::string all(record->begin(), record->end());
    all.replace(all.find("\"db\""), 4, "\"dc\"");
    const std::vector<unsigned char> forged(all.begin(), all.end());
    REQUIRE(parseRecordHeader(forged, forged.size()).has_value());
    CHECK(!openRecord(forged, "db_pass", kKey).has_value());
}

TEST_CASE("a record written before labels and rotation reads as version 1, updated when created, no labels") {
    // The header an older agent wrote: only name, id, size and created.
    const std::string header = std::string(kRecordMagic) +
                               "{\"created\":1600000000,\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"old\","
                               "\"size\":22}\n";
    std::vector<unsigned char> aad(header.begin(), header.end());
    aad.insert(aad.end(), {'o', 'l', 'd'});
    auto sealed = gcmSeal(kKey, bytesOf(kMarker), aad);
    REQUIRE(sealed.has_value());
    std::vector<unsigned char> record(header.begin(), header.end());
    record.insert(record.end(), sealed->nonce.begin(), sealed->nonce.end());
    record.insert(record.end(), sealed->ciphertext.begin(), sealed->ciphertext.end());
    record.insert(record.end(), sealed->tag.begin(), sealed->tag.end());

    auto parsed = parseRecordHeader(record, record.size());
    REQUIRE(parsed.has_value());
    CHECK(parsed->meta.name == "old");
    CHECK(parsed->meta.version == 1);
    CHECK(parsed->meta.updated == 1600000000);
    CHECK(parsed->meta.labels.empty());
    auto plain = openRecord(record, "old", kKey);
    REQUIRE(plain.has_value());
    CHECK(sameBytes(plain->span(), kMarker));
}

TEST_CASE("labels are refused with one line naming what is wrong") {
    const auto refusal = [](const SecretLabels& labels) {
        auto ok = checkLabels(labels);
        return ok ? std::string("ok") : ok.error().message;
    };
    CHECK(refusal({{"a", ""}, {"com.example/x-y_z.1", "any printable ASCII: =, spaces & \"quotes\""}}) == "ok");
    CHECK(refusal({{"", "x"}}) == "a label with an empty key");
    CHECK(refusal({{"a b", "x"}}) == "label key \"a b\": expected 1 to 64 of A-Z a-z 0-9 . _ - /");
    CHECK(refusal({{"k=v", "x"}}) == "label key \"k=v\": expected 1 to 64 of A-Z a-z 0-9 . _ - /");
    CHECK(refusal({{std::string(65, 'k'), "x"}}) ==
          "label key \"" + std::string(64, 'k') + "\": expected 1 to 64 of A-Z a-z 0-9 . _ - /");
    CHECK(refusal({{"k", std::string(257, 'v')}}) == "label \"k\": the value is longer than 256 characters");
    CHECK(refusal({{"k", "line\nbreak"}}) == "label \"k\": the value holds a character that is not printable ASCII");
    SecretLabels many;
    for (int i = 0; i < 17; ++i) many["k" + std::to_string(i)] = "v";
    CHECK(refusal(many) == "17 labels: at most 16");
    SecretLabels heavy;
    for (int i = 0; i < 5; ++i) heavy["k" + std::to_string(i)] = std::string(250, 'v');
    CHECK(refusal(heavy) == "labels of 1260 bytes together: at most 1024");

    SecretMeta bad = meta("db_pass");
    bad.labels = {{"", "x"}};
    CHECK(!sealRecord(bad, kKey, bytesOf(kMarker)).has_value());
}

TEST_CASE("the largest labels allowed still fit in a record header, every character escaped") {
    SecretMeta big = meta("a123456789012345678901234567890123456789012345678901234567890123");
    for (int i = 0; i < 4; ++i) big.labels["key" + std::to_string(i) + std::string(58, 'k')] = std::string(194, '"');
    REQUIRE(checkLabels(big.labels).has_value());
    auto record = sealRecord(big, kKey, bytesOf(kMarker));
    REQUIRE(record.has_value());
    auto header = parseRecordHeader(*record, record->size());
    REQUIRE(header.has_value());
    CHECK(header->meta == big);
}

TEST_CASE("--label text: KEY=VALUE, KEY alone, and a value that holds =") {
    auto both = parseLabel("tier=db");
    REQUIRE(both.has_value());
    CHECK(*both == std::pair<std::string, std::string>{"tier", "db"});
    auto bare = parseLabel("critical");
    REQUIRE(bare.has_value());
    CHECK(*bare == std::pair<std::string, std::string>{"critical", ""});
    auto eq = parseLabel("expr=a=b");
    REQUIRE(eq.has_value());
    CHECK(eq->second == "a=b");
    CHECK(!parseLabel("=v").has_value());
}
