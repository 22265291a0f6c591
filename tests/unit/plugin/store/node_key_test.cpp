#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/store/node_key.hpp"
#include "store_test_support.hpp"
#include "tests/support/skip.hpp"

using namespace secretshim::plugin;
using test::readBytes;
using secretshim::test::TempDir;

namespace {

std::string refusal(const std::string& stateDir) {
    auto key = NodeKey::loadOrCreate(stateDir);
    return key.has_value() ? std::string("accepted") : key.error().message;
}

void writeFile(const std::string& path, std::size_t size, mode_t mode) {
    {
        std::ofstream out(path, std::ios::binary);
        out << std::string(size, 'k');
    }
    ::chmod(path.c_str(), mode);
}

}  // namespace

TEST_CASE("the first start creates a 256-bit key, mode 0600, owned by us") {
    TempDir tmp;
    REQUIRE(!tmp.path().empty());
    const std::string state = tmp.path() + "/state";  // created too
    auto key = NodeKey::loadOrCreate(state);
    REQUIRE(key.has_value());
    CHECK(key->bytes().size() == kNodeKeySize);

    struct stat st {};
    REQUIRE(::lstat((state + "/node.key").c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_size == 32);
    CHECK(st.st_uid == ::geteuid());
    if (::geteuid() == 0) CHECK(st.st_gid == 0);

    const auto onDisk = readBytes(state + "/node.key");
    CHECK(std::equal(onDisk.begin(), onDisk.end(), key->bytes().begin(), key->bytes().end()));
    CHECK(std::any_of(onDisk.begin(), onDisk.end(), [](unsigned char b) { return b != 0; }));

    // Nothing but the key is left behind: no temporary file.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(state)) ++entries;
    CHECK(entries == 1);
}

TEST_CASE("later starts load the same key and never replace it") {
    TempDir tmp;
    auto first = NodeKey::loadOrCreate(tmp.path());
    REQUIRE(first.has_value());
    auto second = NodeKey::loadOrCreate(tmp.path());
    REQUIRE(second.has_value());
    CHECK(std::equal(first->bytes().begin(), first->bytes().end(), second->bytes().begin(),
                     second->bytes().end()));
}

TEST_CASE("two state directories get different keys") {
    TempDir a, b;
    auto ka = NodeKey::loadOrCreate(a.path());
    auto kb = NodeKey::loadOrCreate(b.path());
    REQUIRE(ka.has_value());
    REQUIRE(kb.has_value());
    CHECK(!std::equal(ka->bytes().begin(), ka->bytes().end(), kb->bytes().begin(), kb->bytes().end()));
}

TEST_CASE("a key readable by group or others is refused") {
    TempDir tmp;
    REQUIRE(NodeKey::loadOrCreate(tmp.path()).has_value());
    const std::string path = tmp.path() + "/node.key";
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    CHECK(refusal(tmp.path()) == "node key " + path + " is accessible by group or others (mode 0644); expected 0600");
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    CHECK(refusal(tmp.path()) == "node key " + path + " is accessible by group or others (mode 0640); expected 0600");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    CHECK(refusal(tmp.path()) == "accepted");
}

TEST_CASE("a key that is a symlink is refused, even to a good key") {
    TempDir tmp, other;
    REQUIRE(NodeKey::loadOrCreate(other.path()).has_value());
    const std::string path = tmp.path() + "/node.key";
    REQUIRE(::symlink((other.path() + "/node.key").c_str(), path.c_str()) == 0);
    CHECK(refusal(tmp.path()) == "node key " + path + " is a symlink; refusing it");

    // A dangling symlink is not replaced by a new key either.
    TempDir dangling;
    const std::string link = dangling.path() + "/node.key";
    REQUIRE(::symlink("/nonexistent/node.key", link.c_str()) == 0);
    CHECK(refusal(dangling.path()) == "node key " + link + " is a symlink; refusing it");
}

TEST_CASE("a key of the wrong size is refused") {
    TempDir tmp;
    const std::string path = tmp.path() + "/node.key";
    writeFile(path, 31, 0600);
    CHECK(refusal(tmp.path()) == "node key " + path + " is 31 bytes, expected 32");
    writeFile(path, 0, 0600);
    CHECK(refusal(tmp.path()) == "node key " + path + " is 0 bytes, expected 32");
    writeFile(path, 33, 0600);
    CHECK(refusal(tmp.path()) == "node key " + path + " is 33 bytes, expected 32");
}

TEST_CASE("a key that is not a regular file is refused") {
    TempDir tmp;
    const std::string path = tmp.path() + "/node.key";
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    CHECK(refusal(tmp.path()) == "node key " + path + " is not a regular file");
    REQUIRE(::rmdir(path.c_str()) == 0);
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    CHECK(refusal(tmp.path()) == "node key " + path + " is not a regular file");
}

TEST_CASE("a key owned by another user is refused" *
          doctest::skip(secretshim::testing::skipUnless(::geteuid() == 0, "only root can give a file away"))) {
    TempDir tmp;
    REQUIRE(NodeKey::loadOrCreate(tmp.path()).has_value());
    const std::string path = tmp.path() + "/node.key";
    REQUIRE(::chown(path.c_str(), 1000, 1000) == 0);
    CHECK(refusal(tmp.path()) == "node key " + path + " is owned by uid 1000, expected uid 0");
}

TEST_CASE("a state directory that is a symlink is refused") {
    TempDir tmp;
    const std::string link = tmp.path() + "/state";
    REQUIRE(::symlink(tmp.path().c_str(), link.c_str()) == 0);
    CHECK(refusal(link) == "state directory " + link + " is a symlink; refusing it");
}
