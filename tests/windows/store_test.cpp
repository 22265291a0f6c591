// The Windows store: CNG AES-256-GCM against a NIST vector, a record sealed
// by the Linux (OpenSSL) build opening here unchanged, and WinLocalStore's
// create/list/load/remove on real files under wine. Values are compared in
// code, never printed.
#include <doctest/doctest.h>

#include <windows.h>

#include <string>
#include <vector>

#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/secret_record.hpp"
#include "plugin/windows/state_files.hpp"
#include "plugin/windows/win_store.hpp"
#include "tests/windows/test_support.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using namespace secretshim::testing;

namespace {

// TempDir makes the state directory with the default ACL of %TEMP%: the
// check of an existing state directory is tested in pipe_e2e_test.
constexpr ExistingDirectory kTempDir = ExistingDirectory::asItIs;

std::vector<unsigned char> fromHex(std::string_view hex) {
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<unsigned char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return out;
}

bool sameSpan(std::span<const unsigned char> got, std::string_view want) {
    return got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin(), [](unsigned char a, char b) {
               return a == static_cast<unsigned char>(b);
           });
}

// Sealed by the Linux build's sealRecord() (OpenSSL) under the key
// 00 01 02 .. 1f, as secret "fixture" holding "marker-linux-record-7f3a".
constexpr std::string_view kLinuxRecord =
    "53534853310a7b2263726561746564223a313730303030303030302c226964223a22303132333435363738396162636465663031"
    "3233343536373839616263646566222c226e616d65223a2266697874757265222c2273697a65223a32347d0a8d7d34a3c8fb0ce3"
    "adc7028d3095724e836b6df266d2f011f705b4907bfd8cd2846b401a126b65d153c8fcc77a8113687740edc6";

std::vector<unsigned char> fixtureKey() {
    std::vector<unsigned char> key(32);
    for (int i = 0; i < 32; ++i) key[i] = static_cast<unsigned char>(i);
    return key;
}

}  // namespace

TEST_CASE("CNG AES-256-GCM gives the NIST answer (zero key, zero nonce, 16 zero bytes)") {
    // NIST GCM test case 14: what OpenSSL gives on the Linux side too.
    const std::vector<unsigned char> key(32, 0), plain(16, 0);
    const GcmNonce nonce{};
    const auto ciphertext = fromHex("cea7403d4d606b6e074ec5d3baf39d18");
    const auto tagBytes = fromHex("d0d1c8a799996bf0265b98b5d48ab919");
    GcmTag tag;
    std::copy(tagBytes.begin(), tagBytes.end(), tag.begin());
    auto opened = gcmOpen(key, nonce, ciphertext, tag, {});
    REQUIRE(opened.has_value());
    CHECK(std::equal(opened->span().begin(), opened->span().end(), plain.begin()));
    tag[0] ^= 1;
    auto tampered = gcmOpen(key, nonce, ciphertext, tag, {});
    REQUIRE_FALSE(tampered.has_value());
    CHECK(tampered.error().message == "cannot decrypt");
}

TEST_CASE("seal and open round trip with associated data; nonces differ") {
    const std::vector<unsigned char> key(32, 7);
    const std::string aad = "header";
    const auto aadBytes = bytesOf(aad);
    auto a = gcmSeal(key, bytesOf("marker-roundtrip"), aadBytes);
    auto b = gcmSeal(key, bytesOf("marker-roundtrip"), aadBytes);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(a->nonce != b->nonce);
    auto opened = gcmOpen(key, a->nonce, a->ciphertext, a->tag, aadBytes);
    REQUIRE(opened.has_value());
    CHECK(sameSpan(opened->span(), "marker-roundtrip"));
    CHECK_FALSE(gcmOpen(key, a->nonce, a->ciphertext, a->tag, bytesOf("other")).has_value());
}

TEST_CASE("a record sealed by the Linux build opens here, and only as its own name") {
    const auto record = fromHex(kLinuxRecord);
    const auto key = fixtureKey();
    auto opened = openRecord(record, "fixture", key);
    REQUIRE(opened.has_value());
    CHECK(sameSpan(opened->span(), "marker-linux-record-7f3a"));
    CHECK_FALSE(openRecord(record, "other", key).has_value());
    auto flipped = record;
    flipped[flipped.size() - 20] ^= 0x01;
    CHECK(openRecord(flipped, "fixture", key).error().message == "cannot decrypt (corrupt or tampered)");
}

TEST_CASE("the local store: create, list, load, refusals, remove") {
    TempDir state(L"store");
    auto store = WinLocalStore::open(state.path(), mountfs::kDefaultMaxPayload, kTempDir);
    REQUIRE(store.has_value());
    CHECK(pathExists(state.path() + L"\\node.key"));
    CHECK(pathExists(state.path() + L"\\secrets"));

    auto meta = store->create("db", bytesOf("marker-store-db"));
    REQUIRE(meta.has_value());
    CHECK(meta->size == 15);
    CHECK(meta->id.size() == 32);
    // Encrypted at rest: the record holds no trace of the value.
    const auto raw = readFile(state.path() + L"\\secrets\\db.secret");
    const std::string rawText(raw.begin(), raw.end());
    CHECK(rawText.find("marker-store-db") == std::string::npos);
    CHECK(rawText.rfind("SSHS1\n", 0) == 0);

    CHECK(store->create("db", bytesOf("x")).error().message == "secret \"db\" already exists");
    CHECK(store->create("DB", bytesOf("x")).error().message == "secret \"DB\" already exists");  // NTFS folds case
    CHECK_FALSE(store->create("../x", bytesOf("x")).has_value());
    CHECK_FALSE(store->create("empty", bytesOf("")).has_value());
    std::string big(mountfs::kDefaultMaxPayload + 1, 'x');
    CHECK_FALSE(store->create("big", bytesOf(big)).has_value());

    auto loaded = store->load("db");
    REQUIRE(loaded.has_value());
    CHECK(sameSpan(loaded->span(), "marker-store-db"));
    CHECK(store->load("nope").error().message == "no secret \"nope\"");

    // A second store over the same directory (a restarted agent) uses the same key.
    REQUIRE(store->create("api", bytesOf("marker-store-api")).has_value());
    auto again = WinLocalStore::open(state.path(), mountfs::kDefaultMaxPayload, kTempDir);
    REQUIRE(again.has_value());
    auto list = again->list();
    REQUIRE(list.has_value());
    REQUIRE(list->size() == 2);
    CHECK((*list)[0].name == "api");
    CHECK((*list)[1].name == "db");
    auto api = again->load("api");
    REQUIRE(api.has_value());
    CHECK(sameSpan(api->span(), "marker-store-api"));

    // A record copied over another name does not open as that name.
    REQUIRE(::CopyFileW((state.path() + L"\\secrets\\db.secret").c_str(),
                        (state.path() + L"\\secrets\\copy.secret").c_str(), TRUE));
    CHECK(again->load("copy").error().message == "secret \"copy\": cannot decrypt (corrupt or tampered)");

    REQUIRE(again->remove("db").has_value());
    CHECK(again->remove("db").error().message == "no secret \"db\"");
    CHECK_FALSE(pathExists(state.path() + L"\\secrets\\db.secret"));
}

TEST_CASE("the local store: rotate replaces the value, keeps the id and labels, refuses what create refuses") {
    TempDir state(L"rotate");
    auto store = WinLocalStore::open(state.path(), 64, kTempDir);
    REQUIRE(store.has_value());
    auto created = store->create("db", bytesOf("marker-rotate-old"), {{"tier", "db"}});
    REQUIRE(created.has_value());
    auto rotated = store->rotate("db", bytesOf("marker-rotate-new-value"));
    REQUIRE(rotated.has_value());
    CHECK(rotated->id == created->id);
    CHECK(rotated->version == 2);
    CHECK(rotated->labels == SecretLabels{{"tier", "db"}});
    auto loaded = store->load("db");
    REQUIRE(loaded.has_value());
    CHECK(sameSpan(loaded->span(), "marker-rotate-new-value"));
    const auto raw = readFile(state.path() + L"\\secrets\\db.secret");
    const std::string rawText(raw.begin(), raw.end());
    CHECK(rawText.find("marker-rotate") == std::string::npos);

    CHECK(store->rotate("nope", bytesOf("x")).error().message == "no secret \"nope\"");
    CHECK_FALSE(store->rotate("db", bytesOf(std::string(65, 'x'))).has_value());
    CHECK_FALSE(store->rotate("db", bytesOf("")).has_value());
    auto list = store->list();
    REQUIRE(list.has_value());
    REQUIRE(list->size() == 1);
    CHECK((*list)[0].version == 2);
    auto still = store->load("db");
    REQUIRE(still.has_value());
    CHECK(sameSpan(still->span(), "marker-rotate-new-value"));
}

TEST_CASE("a node key of the wrong size is refused") {
    TempDir state(L"badkey");
    REQUIRE(writeFile(state.path() + L"\\node.key", "short"));
    auto store = WinLocalStore::open(state.path(), mountfs::kDefaultMaxPayload, kTempDir);
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().message.find("node key") != std::string::npos);
}
