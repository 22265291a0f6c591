#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <sys/stat.h>

#include <doctest/doctest.h>

#include "plugin/cluster/envelope.hpp"

using namespace secretshim::cluster;

namespace {

const std::string kMarker = "envelope-MARKER-7c1f03aa";

std::span<const unsigned char> bytesOf(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

bool same(const SecureBuffer& b, const std::string& s) {
    return b.size() == s.size() && std::equal(b.data(), b.data() + b.size(), s.data(),
                                              [](unsigned char a, char c) { return a == static_cast<unsigned char>(c); });
}

const SecretBinding kBinding{"node-1", "db_pass", "0123abcd", 3};

}  // namespace

TEST_CASE("a per-node copy opens with the node's key and the same binding") {
    auto node = NodeKeyPair::generate();
    REQUIRE(node.has_value());
    auto sealed = sealForNode(node->publicKey(), bytesOf(kMarker), kBinding);
    REQUIRE(sealed.has_value());
    CHECK(sealed->epk.size() == 32);
    CHECK(sealed->ciphertext.find(kMarker) == std::string::npos);
    auto plain = node->open(*sealed, kBinding);
    REQUIRE(plain.has_value());
    CHECK(same(*plain, kMarker));
}

TEST_CASE("a per-node copy does not open for another node, name, id or version") {
    auto node = NodeKeyPair::generate();
    auto other = NodeKeyPair::generate();
    REQUIRE(node.has_value());
    REQUIRE(other.has_value());
    auto sealed = sealForNode(node->publicKey(), bytesOf(kMarker), kBinding);
    REQUIRE(sealed.has_value());
    CHECK_FALSE(other->open(*sealed, kBinding).has_value());
    for (SecretBinding b : {SecretBinding{"node-2", "db_pass", "0123abcd", 3}, SecretBinding{"node-1", "db_pas", "0123abcd", 3},
                            SecretBinding{"node-1", "db_pass", "0123abce", 3}, SecretBinding{"node-1", "db_pass", "0123abcd", 2}}) {
        auto plain = node->open(*sealed, b);
        REQUIRE_FALSE(plain.has_value());
        CHECK(plain.error().code == EBADMSG);
    }
}

TEST_CASE("a tampered per-node copy does not open") {
    auto node = NodeKeyPair::generate();
    REQUIRE(node.has_value());
    auto sealed = sealForNode(node->publicKey(), bytesOf(kMarker), kBinding);
    REQUIRE(sealed.has_value());
    for (std::string SealedValue::*field : {&SealedValue::epk, &SealedValue::nonce, &SealedValue::ciphertext, &SealedValue::tag}) {
        SealedValue bad = *sealed;
        (bad.*field)[0] ^= 1;
        CHECK_FALSE(node->open(bad, kBinding).has_value());
    }
}

TEST_CASE("the associated data keeps fields apart") {
    CHECK(associatedData({"n", "ab", "c", 1}) != associatedData({"n", "a", "bc", 1}));
    CHECK(associatedData({"", "a", "b", 1}) != associatedData({"x", "a", "b", 1}));
}

TEST_CASE("the cluster key seals master copies, bound like node copies") {
    char tmpl[] = "/tmp/secretshim-envelope-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string path = std::string(tmpl) + "/cluster.key";
    auto key = ClusterKey::loadOrCreate(path);
    REQUIRE(key.has_value());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const SecretBinding master{"", "db_pass", "id1", 1};
    auto sealed = key->seal(bytesOf(kMarker), master);
    REQUIRE(sealed.has_value());
    auto again = ClusterKey::load(path);
    REQUIRE(again.has_value());
    auto plain = again->open(*sealed, master);
    REQUIRE(plain.has_value());
    CHECK(same(*plain, kMarker));
    CHECK_FALSE(again->open(*sealed, SecretBinding{"", "db_pass", "id1", 2}).has_value());
    CHECK_FALSE(ClusterKey::load(std::string(tmpl) + "/missing.key").has_value());
    std::filesystem::remove_all(tmpl);
}

TEST_CASE("a node key file is created once and loaded the same") {
    char tmpl[] = "/tmp/secretshim-envelope-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    auto a = NodeKeyPair::loadOrCreate(tmpl, "cluster-node.key");
    auto b = NodeKeyPair::loadOrCreate(tmpl, "cluster-node.key");
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(a->publicKey() == b->publicKey());
    std::filesystem::remove_all(tmpl);
}
