#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/local_store.hpp"
#include "store_test_support.hpp"

using namespace secretshim::plugin;
using secretshim::Result;
using test::bytesOf;
using test::containsBytes;
using test::readBytes;
using test::sameBytes;
using secretshim::test::TempDir;
using test::writeBytesInPlace;

namespace {

const std::string kMarker = "store-MARKER-6f1e0b94-do-not-leak";
const std::string kOther = "store-OTHER-value-93d2";

LocalStore openStore(const std::string& state, StoreOptions options = {}) {
    auto store = LocalStore::open(state, options);
    REQUIRE(store.has_value());
    return std::move(*store);
}

std::string fileOf(const std::string& state, const std::string& name) {
    return state + "/secrets/" + name + ".secret";
}

std::string loadError(const LocalStore& store, const std::string& name) {
    auto value = store.load(name);
    return value.has_value() ? std::string("loaded") : value.error().message;
}

std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::size_t headerLength(const std::vector<unsigned char>& raw) {
    const std::string all(raw.begin(), raw.end());
    return all.find('\n', kRecordMagic.size()) + 1;
}

}  // namespace

TEST_CASE("a created secret loads back and is encrypted at rest") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    const auto before = now();
    auto meta = store.create("db_pass", bytesOf(kMarker));
    REQUIRE(meta.has_value());
    CHECK(meta->name == "db_pass");
    CHECK(meta->size == kMarker.size());
    CHECK(meta->id.size() == 32);
    CHECK(meta->id.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(meta->created >= before);
    CHECK(meta->created <= now());

    auto value = store.load("db_pass");
    REQUIRE(value.has_value());
    CHECK(sameBytes(value->span(), kMarker));

    const auto raw = readBytes(fileOf(tmp.path(), "db_pass"));
    CHECK(!raw.empty());
    CHECK(!containsBytes(raw, kMarker));
    CHECK(!containsBytes(raw, kMarker.substr(0, 8)));
    CHECK(containsBytes(raw, "SSHS1\n"));
}

TEST_CASE("a reopened store reads what an earlier one wrote") {
    TempDir tmp;
    {
        auto store = openStore(tmp.path());
        REQUIRE(store.create("api", bytesOf(kMarker)).has_value());
    }
    auto store = openStore(tmp.path());
    auto value = store.load("api");
    REQUIRE(value.has_value());
    CHECK(sameBytes(value->span(), kMarker));
}

TEST_CASE("files and directories are private") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("db_pass", bytesOf(kMarker)).has_value());
    CHECK(store.secretsDir() == tmp.path() + "/secrets");

    struct stat st {};
    REQUIRE(::stat((tmp.path() + "/secrets").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    REQUIRE(::lstat(fileOf(tmp.path(), "db_pass").c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == ::geteuid());
    if (::geteuid() == 0) CHECK(st.st_gid == 0);

    // Only the record: its temporary file is gone.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(tmp.path() + "/secrets")) ++entries;
    CHECK(entries == 1);
}

TEST_CASE("writing the same value twice gives different ciphertext") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("a", bytesOf(kMarker)).has_value());
    const auto first = readBytes(fileOf(tmp.path(), "a"));
    REQUIRE(store.remove("a").has_value());
    REQUIRE(store.create("a", bytesOf(kMarker)).has_value());
    const auto second = readBytes(fileOf(tmp.path(), "a"));

    REQUIRE(first.size() == second.size());
    const std::vector<unsigned char> body1(first.begin() + static_cast<long>(headerLength(first)), first.end());
    const std::vector<unsigned char> body2(second.begin() + static_cast<long>(headerLength(second)), second.end());
    CHECK(body1 != body2);
    // Nonces differ, and so does the ciphertext after them.
    CHECK(!std::equal(body1.begin(), body1.begin() + kGcmNonceSize, body2.begin()));
    CHECK(!std::equal(body1.begin() + kGcmNonceSize, body1.end() - kGcmTagSize, body2.begin() + kGcmNonceSize));
}

TEST_CASE("changing any byte of a record makes it fail to decrypt") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("db_pass", bytesOf(kMarker)).has_value());
    const std::string path = fileOf(tmp.path(), "db_pass");
    const auto original = readBytes(path);
    const std::size_t header = headerLength(original);
    const std::string tampered = "secret \"db_pass\": cannot decrypt (corrupt or tampered)";

    const std::string text(original.begin(), original.end());
    const std::size_t createdDigit = text.find("\"created\":") + 11;
    const std::size_t idChar = text.find("\"id\":\"") + 7;
    struct Case {
        const char* what;
        std::size_t offset;
    };
    const Case cases[] = {
        {"magic", 0},
        {"created", createdDigit},
        {"id", idChar},
        {"nonce", header},
        {"first ciphertext byte", header + kGcmNonceSize},
        {"last ciphertext byte", original.size() - kGcmTagSize - 1},
        {"first tag byte", original.size() - kGcmTagSize},
        {"last tag byte", original.size() - 1},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        auto changed = original;
        if (c.offset > 5 && c.offset < header)
            changed[c.offset] = changed[c.offset] == '1' ? '2' : '1';  // still valid JSON
        else
            changed[c.offset] ^= 0x01;
        REQUIRE(changed != original);
        writeBytesInPlace(path, changed);
        const std::string error = loadError(store, "db_pass");
        CHECK(error == tampered);
        CHECK(error.find(kMarker) == std::string::npos);
    }

    // A truncated record and an appended byte fail the same way.
    writeBytesInPlace(path, {original.begin(), original.end() - 1});
    CHECK(loadError(store, "db_pass") == tampered);
    auto longer = original;
    longer.push_back(0);
    writeBytesInPlace(path, longer);
    CHECK(loadError(store, "db_pass") == tampered);

    writeBytesInPlace(path, original);
    CHECK(loadError(store, "db_pass") == "loaded");
}

TEST_CASE("a record moved to another secret's name does not decrypt") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("alpha", bytesOf(kMarker)).has_value());
    REQUIRE(store.create("bravo", bytesOf(kOther)).has_value());
    std::filesystem::rename(fileOf(tmp.path(), "alpha"), fileOf(tmp.path(), "bravo"));
    CHECK(loadError(store, "bravo") == "secret \"bravo\": cannot decrypt (corrupt or tampered)");

    // Rewriting the name in the header as well does not help: the header is
    // authenticated.
    REQUIRE(store.create("gamma", bytesOf(kMarker)).has_value());
    auto raw = readBytes(fileOf(tmp.path(), "gamma"));
    std::string all(raw.begin(), raw.end());
    all.replace(all.find("\"gamma\""), 7, "\"delta\"");
    {
        std::ofstream out(fileOf(tmp.path(), "delta"), std::ios::binary);
        out << all;
    }
    ::chmod(fileOf(tmp.path(), "delta").c_str(), 0600);
    auto forged = store.inspect("delta");
    REQUIRE(forged.has_value());  // the metadata looks fine
    CHECK(loadError(store, "delta") == "secret \"delta\": cannot decrypt (corrupt or tampered)");
}

TEST_CASE("another node key cannot decrypt the records") {
    TempDir a, b;
    {
        auto store = openStore(a.path());
        REQUIRE(store.create("db_pass", bytesOf(kMarker)).has_value());
    }
    auto other = openStore(b.path());
    std::filesystem::copy_file(fileOf(a.path(), "db_pass"), fileOf(b.path(), "db_pass"));
    CHECK(loadError(other, "db_pass") == "secret \"db_pass\": cannot decrypt (corrupt or tampered)");
}

TEST_CASE("create refuses bad input with one exact line") {
    TempDir tmp;
    auto store = openStore(tmp.path(), StoreOptions{16});
    const auto refusal = [&](std::string_view name, std::string_view value) {
        auto meta = store.create(name, bytesOf(value));
        return meta.has_value() ? std::string("created") : meta.error().message;
    };

    CHECK(refusal("db", "0123456789abcdef") == "created");  // exactly at the limit
    CHECK(refusal("db", "x") == "secret \"db\" already exists");
    CHECK(refusal("empty", "") == "secret \"empty\" is empty");
    CHECK(refusal("big", "0123456789abcdefg") == "secret \"big\" is 17 bytes, over the limit of 16");
    CHECK(refusal("../etc", "x") == "secret name \"../etc\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(refusal("a/b", "x") == "secret name \"a/b\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(refusal(".hidden", "x") == "secret name \".hidden\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(refusal("", "x") == "secret name \"\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(refusal("bad\nname", "x") == "secret name \"bad?name\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(refusal(std::string(65, 'a'), "x") ==
          "secret name \"" + std::string(65, 'a') + "\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

    // Refusals leave nothing behind.
    auto all = store.list();
    REQUIRE(all.has_value());
    REQUIRE(all->size() == 1);
    CHECK(all->front().name == "db");
}

TEST_CASE("the default limit is Docker's 500 KiB") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    const std::string atLimit(512000, 'v');
    auto meta = store.create("big", bytesOf(atLimit));
    REQUIRE(meta.has_value());
    auto value = store.load("big");
    REQUIRE(value.has_value());
    CHECK(sameBytes(value->span(), atLimit));
    auto over = store.create("bigger", bytesOf(atLimit + "v"));
    REQUIRE(!over.has_value());
    CHECK(over.error().message == "secret \"bigger\" is 512001 bytes, over the limit of 512000");
}

TEST_CASE("load refuses a stored value over a lowered limit") {
    TempDir tmp;
    {
        auto store = openStore(tmp.path());
        REQUIRE(store.create("db", bytesOf(kMarker)).has_value());
    }
    auto store = openStore(tmp.path(), StoreOptions{8});
    CHECK(loadError(store, "db") ==
          "secret \"db\" is " + std::to_string(kMarker.size()) + " bytes, over the limit of 8");
}

TEST_CASE("list is sorted by name and shows metadata only") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    auto empty = store.list();
    REQUIRE(empty.has_value());
    CHECK(empty->empty());

    auto zeta = store.create("zeta", bytesOf(kMarker));
    auto alpha = store.create("alpha", bytesOf(kOther));
    auto mid = store.create("Mid.v2", bytesOf("12345"));
    REQUIRE(zeta.has_value());
    REQUIRE(alpha.has_value());
    REQUIRE(mid.has_value());
    // Not records: ignored.
    { std::ofstream(tmp.path() + "/secrets/.zeta.secret.tmp.0011223344556677") << "partial"; }
    { std::ofstream(tmp.path() + "/secrets/README") << "x"; }

    auto all = store.list();
    REQUIRE(all.has_value());
    REQUIRE(all->size() == 3);
    CHECK((*all)[0] == *mid);
    CHECK((*all)[1] == *alpha);
    CHECK((*all)[2] == *zeta);
    CHECK((*all)[2].size == kMarker.size());
    CHECK(alpha->id != zeta->id);

    auto one = store.inspect("alpha");
    REQUIRE(one.has_value());
    CHECK(*one == *alpha);
}

TEST_CASE("list and inspect need no key and report a corrupt header") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("db", bytesOf(kMarker)).has_value());
    auto raw = readBytes(fileOf(tmp.path(), "db"));
    raw[0] = 'X';
    writeBytesInPlace(fileOf(tmp.path(), "db"), raw);
    auto meta = store.inspect("db");
    REQUIRE(!meta.has_value());
    CHECK(meta.error().message == "secret \"db\": not a secretshim record (bad magic)");
    auto all = store.list();
    REQUIRE(!all.has_value());
    CHECK(all.error().message == "secret \"db\": not a secretshim record (bad magic)");
}

TEST_CASE("a removed secret is gone") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("db_pass", bytesOf(kMarker)).has_value());
    REQUIRE(store.create("keep", bytesOf(kOther)).has_value());
    REQUIRE(store.remove("db_pass").has_value());
    CHECK(!std::filesystem::exists(fileOf(tmp.path(), "db_pass")));

    auto value = store.load("db_pass");
    REQUIRE(!value.has_value());
    CHECK(value.error().code == ENOENT);
    CHECK(value.error().message == "secret \"db_pass\" does not exist");
    auto meta = store.inspect("db_pass");
    REQUIRE(!meta.has_value());
    CHECK(meta.error().message == "secret \"db_pass\" does not exist");
    auto again = store.remove("db_pass");
    REQUIRE(!again.has_value());
    CHECK(again.error().message == "secret \"db_pass\" does not exist");
    CHECK(store.remove("../node.key").error().message ==
          "secret name \"../node.key\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(loadError(store, "../node") ==
          "secret name \"../node\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

    auto all = store.list();
    REQUIRE(all.has_value());
    REQUIRE(all->size() == 1);
    CHECK(all->front().name == "keep");
    CHECK(loadError(store, "keep") == "loaded");
}

TEST_CASE("record files must be private regular files") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    REQUIRE(store.create("db", bytesOf(kMarker)).has_value());
    const std::string path = fileOf(tmp.path(), "db");
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    CHECK(loadError(store, "db") ==
          "secret file " + path + " is accessible by group or others (mode 0644); expected 0600");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);

    REQUIRE(store.create("real", bytesOf(kOther)).has_value());
    REQUIRE(::symlink(fileOf(tmp.path(), "real").c_str(), fileOf(tmp.path(), "link").c_str()) == 0);
    CHECK(loadError(store, "link") == "secret file " + fileOf(tmp.path(), "link") + " is a symlink; refusing it");
}

TEST_CASE("a secrets directory others can read is refused") {
    TempDir tmp;
    { auto store = openStore(tmp.path()); }
    const std::string dir = tmp.path() + "/secrets";
    REQUIRE(::chmod(dir.c_str(), 0755) == 0);
    auto store = LocalStore::open(tmp.path());
    REQUIRE(!store.has_value());
    CHECK(store.error().message ==
          "secrets directory " + dir + " is accessible by group or others (mode 0755); expected 0700");
}

TEST_CASE("the store refuses a bad node key") {
    TempDir tmp;
    { auto store = openStore(tmp.path()); }
    REQUIRE(::chmod((tmp.path() + "/node.key").c_str(), 0604) == 0);
    auto store = LocalStore::open(tmp.path());
    REQUIRE(!store.has_value());
    CHECK(store.error().message == "node key " + tmp.path() +
                                       "/node.key is accessible by group or others (mode 0604); expected 0600");
}

namespace {

// Decrypts value `index` of `sealed` into `out`, piece by piece, noting the
// largest piece.
Result<void> decryptAll(const SealedSecrets& sealed, std::size_t index, std::string& out, std::size_t& largest) {
    out.clear();
    return sealed.decryptTo(index, [&](std::span<const unsigned char> piece) -> Result<void> {
        largest = std::max(largest, piece.size());
        out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
        return {};
    });
}

std::string patterned(std::size_t size, char seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + static_cast<char>(i * 7 % 251));
    return s;
}

// readMany(names) succeeds, and each value decrypts to exactly values[i];
// returns the largest piece handed out.
std::size_t checkReadMany(const LocalStore& store, const std::vector<std::string>& names,
                          const std::vector<std::string>& values) {
    auto sealed = store.readMany(names);
    REQUIRE_MESSAGE(sealed.has_value(), (sealed ? "" : sealed.error().message));
    REQUIRE(sealed->count() == names.size());
    std::size_t largest = 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
        CAPTURE(names[i]);
        CHECK(sealed->size(i) == values[i].size());
        std::string got;
        REQUIRE(decryptAll(*sealed, i, got, largest).has_value());
        const bool same = got == values[i];
        CHECK_MESSAGE(same, "the decrypted value differs");
    }
    return largest;
}

}  // namespace

TEST_CASE("readMany: sizes first, then each value decrypts in pieces to exactly its bytes") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    // Over the 1 MiB held from the first read: the last ones are read again.
    const std::vector<std::string> names = {"small", "big", "bigger", "biggest", "small"};
    const std::vector<std::string> values = {kMarker, patterned(200000, 'a'), patterned(450000, 'b'),
                                             patterned(500 * 1024, 'c'), kMarker};
    for (std::size_t i = 0; i < 4; ++i) REQUIRE(store.create(names[i], bytesOf(values[i])).has_value());
    // The large values go through in 64 KiB pieces.
    CHECK(checkReadMany(store, names, values) == 64 * 1024);

    const std::vector<std::string> missing = {"small", "nope"};
    auto refused = store.readMany(missing);
    REQUIRE(!refused.has_value());
    CHECK(refused.error().message == "secret \"nope\" does not exist");

    auto limited = openStore(tmp.path(), StoreOptions{1000});
    auto over = limited.readMany(names);
    REQUIRE(!over.has_value());
    CHECK(over.error().message.find("\"big\"") != std::string::npos);
}

TEST_CASE("readMany: a record tampered in its ciphertext fails at its turn with the one line") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    const std::vector<std::string> names = {"s1", "s2", "s3", "s4"};
    for (const auto& n : names) REQUIRE(store.create(n, bytesOf(patterned(100000, n[1]))).has_value());
    const std::string path = fileOf(tmp.path(), "s3");
    auto raw = readBytes(path);
    raw[raw.size() / 2] ^= 0x10;
    writeBytesInPlace(path, raw);

    auto sealed = store.readMany(names);  // headers are intact: nothing decrypted yet
    REQUIRE(sealed.has_value());
    std::size_t largest = 0;
    std::string got;
    CHECK(decryptAll(*sealed, 1, got, largest).has_value());
    auto failed = decryptAll(*sealed, 2, got, largest);
    REQUIRE(!failed.has_value());
    CHECK(failed.error().code == EBADMSG);
    CHECK(failed.error().message == "secret \"s3\": cannot decrypt (corrupt or tampered)");
    // GCM hands out plaintext before the tag is checked: the receiver must
    // wipe it (the view does).
    CHECK(got.size() == 100000);

    // An error of the receiver is returned as it is, not as tampering.
    auto refused = sealed->decryptTo(0, [](std::span<const unsigned char>) -> Result<void> {
        return secretshim::failWith(ENOSPC, "no room");
    });
    REQUIRE(!refused.has_value());
    CHECK(refused.error().message == "no room");

    // A record moved to another secret's name (its header names the other
    // secret) is refused by readMany itself, before anything is decrypted.
    std::filesystem::rename(fileOf(tmp.path(), "s1"), fileOf(tmp.path(), "s2"));
    const std::vector<std::string> moved = {"s2"};
    auto swapped = store.readMany(moved);
    REQUIRE(!swapped.has_value());
    CHECK(swapped.error().message == "secret \"s2\": cannot decrypt (corrupt or tampered)");
}

TEST_CASE("readMany: many secrets are read on two threads, each value in its place; either half's error is the line") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    // 100 names, read in two halves of 50 with 512 KiB held each: values of
    // 400000 bytes at 10 and 20 (the second over the first half's budget: read
    // again at its turn) and at 70 (held in the second half, after 20 held
    // small ones: its offset moves when the halves are joined).
    std::vector<std::string> names, values;
    for (unsigned i = 0; i < 100; ++i) {
        names.push_back("m" + std::to_string(i));
        const bool big = i == 10 || i == 20 || i == 70;
        values.push_back(big ? patterned(400000, static_cast<char>(i)) : patterned(64 + i, static_cast<char>(i)));
        REQUIRE(store.create(names.back(), bytesOf(values.back())).has_value());
    }
    (void)checkReadMany(store, names, values);

    // A record missing in the second half, a corrupt header in the first.
    std::filesystem::remove(fileOf(tmp.path(), "m83"));
    auto missing = store.readMany(names);
    REQUIRE(!missing.has_value());
    CHECK(missing.error().message == "secret \"m83\" does not exist");
    auto raw = readBytes(fileOf(tmp.path(), "m7"));
    raw[2] ^= 0x40;
    writeBytesInPlace(fileOf(tmp.path(), "m7"), raw);
    names.erase(names.begin() + 83);
    auto corrupt = store.readMany(names);
    REQUIRE(!corrupt.has_value());
    CHECK(corrupt.error().message == "secret \"m7\": cannot decrypt (corrupt or tampered)");
}

TEST_CASE("labels given at create are kept in the record and read back by list and inspect") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    auto meta = store.create("db", bytesOf(kMarker), {{"tier", "db"}, {"team", "payments"}});
    REQUIRE(meta.has_value());
    CHECK(meta->labels == SecretLabels{{"team", "payments"}, {"tier", "db"}});
    CHECK(meta->version == 1);
    CHECK(meta->updated == meta->created);
    REQUIRE(store.create("plain", bytesOf(kOther)).has_value());
    auto reopened = openStore(tmp.path());
    auto all = reopened.list();
    REQUIRE(all.has_value());
    REQUIRE(all->size() == 2);
    CHECK(all->at(0).labels == meta->labels);
    CHECK(all->at(1).labels.empty());
    auto one = reopened.inspect("db");
    REQUIRE(one.has_value());
    CHECK(*one == *meta);
    auto bad = store.create("bad", bytesOf(kMarker), {{"no spaces", "x"}});
    REQUIRE(!bad.has_value());
    CHECK(bad.error().message == "secret \"bad\": label key \"no spaces\": expected 1 to 64 of A-Z a-z 0-9 . _ - /");
    CHECK(loadError(store, "bad") == "secret \"bad\" does not exist");
}

TEST_CASE("rotate replaces the value in a new record: same id, labels and grants, version one more") {
    TempDir tmp;
    auto store = openStore(tmp.path());
    auto created = store.create("db", bytesOf(kMarker), {{"tier", "db"}});
    REQUIRE(created.has_value());
    REQUIRE(store.writeGrants("db", created->id, {"root"}).has_value());
    struct stat before {};
    REQUIRE(::stat(fileOf(tmp.path(), "db").c_str(), &before) == 0);

    auto rotated = store.rotate("db", bytesOf(kOther));
    REQUIRE(rotated.has_value());
    CHECK(rotated->id == created->id);
    CHECK(rotated->created == created->created);
    CHECK(rotated->labels == created->labels);
    CHECK(rotated->version == 2);
    CHECK(rotated->size == kOther.size());
    CHECK(rotated->updated >= created->updated);

    auto value = store.load("db");
    REQUIRE(value.has_value());
    CHECK(sameBytes(value->span(), kOther));
    const auto raw = readBytes(fileOf(tmp.path(), "db"));
    CHECK(!containsBytes(raw, kOther));
    CHECK(!containsBytes(raw, kMarker));
    // A new file renamed into place (never rewritten in place), still private.
    struct stat after {};
    REQUIRE(::stat(fileOf(tmp.path(), "db").c_str(), &after) == 0);
    CHECK(after.st_ino != before.st_ino);
    CHECK((after.st_mode & 07777) == 0600);
    auto grants = store.readGrants("db", rotated->id);
    REQUIRE(grants.has_value());
    CHECK(*grants == std::vector<std::string>{"root"});
    auto again = store.rotate("db", bytesOf(kMarker));
    REQUIRE(again.has_value());
    CHECK(again->version == 3);
    // Nothing else in the directory: no temporary file left behind.
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path() + "/secrets")) files += e.is_regular_file();
    CHECK(files == 2);  // db.secret, db.grants
}

TEST_CASE("a refused rotation leaves the record as it was") {
    TempDir tmp;
    auto store = openStore(tmp.path(), StoreOptions{40});
    REQUIRE(store.create("db", bytesOf(kMarker)).has_value());
    const auto original = readBytes(fileOf(tmp.path(), "db"));
    const auto refusal = [&](std::string_view name, std::string_view value) {
        auto meta = store.rotate(name, bytesOf(value));
        return meta.has_value() ? std::string("rotated") : meta.error().message;
    };
    CHECK(refusal("db", std::string(41, 'x')) == "secret \"db\" is 41 bytes, over the limit of 40");
    CHECK(refusal("db", "") == "secret \"db\" is empty");
    CHECK(refusal("nope", "x") == "secret \"nope\" does not exist");
    CHECK(refusal("../db", "x") == "secret name \"../db\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    CHECK(readBytes(fileOf(tmp.path(), "db")) == original);

    // A record whose header was edited on disk is not sealed again.
    auto forged = original;
    const std::size_t at = headerLength(forged) - 3;  // inside the metadata line
    forged[at] = forged[at] == '1' ? '2' : '1';
    writeBytesInPlace(fileOf(tmp.path(), "db"), forged);
    const std::string line = refusal("db", "y");
    CHECK(line.find("secret \"db\"") == 0);
    CHECK(readBytes(fileOf(tmp.path(), "db")) == forged);
}
