#include <cerrno>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/store/aes_gcm.hpp"
#include "store_test_support.hpp"

using namespace secretshim::plugin;
using test::bytesOf;
using test::sameBytes;

namespace {

const std::string kMarker = "aes-gcm-MARKER-2b9e41d7";
const std::vector<unsigned char> kKey(kAesKeySize, 0x11);
const std::string kAad = "bound to this";

}  // namespace

TEST_CASE("seal then open gives the plaintext back") {
    auto sealed = gcmSeal(kKey, bytesOf(kMarker), bytesOf(kAad));
    REQUIRE(sealed.has_value());
    CHECK(sealed->ciphertext.size() == kMarker.size());
    auto plain = gcmOpen(kKey, sealed->nonce, sealed->ciphertext, sealed->tag, bytesOf(kAad));
    REQUIRE(plain.has_value());
    CHECK(sameBytes(plain->span(), kMarker));
}

TEST_CASE("each seal uses a fresh nonce") {
    auto a = gcmSeal(kKey, bytesOf(kMarker), bytesOf(kAad));
    auto b = gcmSeal(kKey, bytesOf(kMarker), bytesOf(kAad));
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(a->nonce != b->nonce);
    CHECK(a->ciphertext != b->ciphertext);
}

TEST_CASE("open fails on any changed input") {
    auto sealed = gcmSeal(kKey, bytesOf(kMarker), bytesOf(kAad));
    REQUIRE(sealed.has_value());
    const auto refused = [](const secretshim::Result<SecureBuffer>& r) {
        return !r.has_value() && r.error().code == EBADMSG && r.error().message == "cannot decrypt";
    };

    auto ciphertext = sealed->ciphertext;
    ciphertext[3] ^= 1;
    CHECK(refused(gcmOpen(kKey, sealed->nonce, ciphertext, sealed->tag, bytesOf(kAad))));

    auto tag = sealed->tag;
    tag[0] ^= 0x80;
    CHECK(refused(gcmOpen(kKey, sealed->nonce, sealed->ciphertext, tag, bytesOf(kAad))));

    auto nonce = sealed->nonce;
    nonce[11] ^= 1;
    CHECK(refused(gcmOpen(kKey, nonce, sealed->ciphertext, sealed->tag, bytesOf(kAad))));

    CHECK(refused(gcmOpen(kKey, sealed->nonce, sealed->ciphertext, sealed->tag, bytesOf("bound to that"))));

    std::vector<unsigned char> otherKey(kAesKeySize, 0x12);
    CHECK(refused(gcmOpen(otherKey, sealed->nonce, sealed->ciphertext, sealed->tag, bytesOf(kAad))));

    std::vector<unsigned char> shortKey(16, 0x11);
    CHECK(refused(gcmOpen(shortKey, sealed->nonce, sealed->ciphertext, sealed->tag, bytesOf(kAad))));
}

TEST_CASE("seal refuses a key that is not 256 bits") {
    std::vector<unsigned char> shortKey(16, 0x11);
    auto sealed = gcmSeal(shortKey, bytesOf(kMarker), bytesOf(kAad));
    REQUIRE(!sealed.has_value());
    CHECK(sealed.error().message == "encrypting: the key is not 256 bits");
}
