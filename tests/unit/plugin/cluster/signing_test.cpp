// Signed cluster records: what a node accepts, and what it refuses.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "plugin/agent/serial_floor.hpp"
#include "plugin/cluster/signing.hpp"
#include "tests/support/ed25519_key.hpp"
#include "tests/support/temp_dir.hpp"

using namespace secretshim::cluster;
using secretshim::plugin::SerialFloor;

using secretshim::test::TempDir;

namespace {

// A fresh Ed25519 pair in PEM files.
struct KeyFiles {
    std::string priv, pub;
    KeyFiles(const std::string& dir, const std::string& name) : priv(dir + "/" + name + ".key"), pub(dir + "/" + name + ".pub") {
        REQUIRE(secretshim::test::writeEd25519Key(priv, pub));
    }
};

TaskAssignment task() {
    TaskAssignment t;
    t.task = "web";
    t.secrets = "db_pass";
    t.identity = secretshim::plugin::GrantRule::parse("root").value();
    return t;
}

const std::string kTaskKey = "/secretshim/nodes/n1/tasks/web";

}  // namespace

TEST_CASE("signing: a signed record verifies; any change to it, or to its key, does not") {
    TempDir dir;
    KeyFiles admin(dir.path(), "admin");
    auto signer = AdminSigningKey::load(admin.priv);
    REQUIRE(signer.has_value());
    auto trusted = TrustedKeys::load({admin.pub});
    REQUIRE(trusted.has_value());
    CHECK(signer->id() == keyId(signer->publicKey()));
    CHECK(signer->id().size() == 16);

    TaskAssignment t = task();
    REQUIRE(signer->sign(kTaskKey, t, 42).has_value());
    CHECK(t.sig.serial == 42);
    CHECK(trusted->verify(kTaskKey, t).has_value());
    // Through etcd and back.
    auto decoded = decodeTask(encodeTask(t));
    REQUIRE(decoded.has_value());
    CHECK(decoded->sig == t.sig);
    CHECK(trusted->verify(kTaskKey, *decoded).has_value());

    auto refused = [&](TaskAssignment changed, const std::string& key = kTaskKey) {
        auto ok = trusted->verify(key, changed);
        return !ok && ok.error().message.find("does not verify") != std::string::npos;
    };
    CHECK(refused(t, "/secretshim/nodes/n2/tasks/web"));  // moved to another node
    TaskAssignment c = t;
    c.secrets = "source=db_pass,target=/usr/share/nginx/html/x.txt";
    CHECK(refused(c));
    c = t, c.signal = 9;
    CHECK(refused(c));
    c = t, c.maxContainers = 100;
    CHECK(refused(c));
    c = t, c.identity = secretshim::plugin::GrantRule::parse("podman,name=*").value();
    CHECK(refused(c));
    c = t, c.sig.serial = 43;  // a replay made to look new
    CHECK(refused(c));

    c = task();  // unsigned
    auto unsigned_ = trusted->verify(kTaskKey, c);
    REQUIRE_FALSE(unsigned_.has_value());
    CHECK(unsigned_.error().message == "not signed by an admin key");
}

TEST_CASE("signing: only the trusted keys count; both count while a key is rotated") {
    TempDir dir;
    KeyFiles oldKey(dir.path(), "old"), newKey(dir.path(), "new"), attacker(dir.path(), "attacker");
    auto signedBy = [&](const KeyFiles& k) {
        NodeSecret s{"db", "abc", 3, {std::string(32, 'e'), std::string(12, 'n'), "ct", std::string(16, 't')}, {}};
        REQUIRE(AdminSigningKey::load(k.priv)->sign("/secretshim/nodes/n1/secrets/db", s, 7).has_value());
        return s;
    };
    auto both = TrustedKeys::load({oldKey.pub, newKey.pub});
    REQUIRE(both.has_value());
    CHECK(both->verify("/secretshim/nodes/n1/secrets/db", signedBy(oldKey)).has_value());
    CHECK(both->verify("/secretshim/nodes/n1/secrets/db", signedBy(newKey)).has_value());
    auto forged = both->verify("/secretshim/nodes/n1/secrets/db", signedBy(attacker));
    REQUIRE_FALSE(forged.has_value());
    CHECK(forged.error().message.find("unknown key") != std::string::npos);
    // An attacker's signature under a trusted key's id.
    NodeSecret s = signedBy(attacker);
    s.sig.signer = AdminSigningKey::load(newKey.priv)->id();
    CHECK_FALSE(both->verify("/secretshim/nodes/n1/secrets/db", s).has_value());
    // A copy re-sealed by someone else (same signature, new ciphertext).
    s = signedBy(newKey);
    s.sealed.ciphertext = "cu";
    CHECK_FALSE(both->verify("/secretshim/nodes/n1/secrets/db", s).has_value());
}

TEST_CASE("signing: keys that are not Ed25519 PEM, or readable by others, are refused") {
    TempDir dir;
    KeyFiles admin(dir.path(), "admin");
    ::chmod(admin.priv.c_str(), 0644);
    auto open = AdminSigningKey::load(admin.priv);
    REQUIRE_FALSE(open.has_value());
    CHECK(open.error().message.find("accessible by group or others") != std::string::npos);
    ::chmod(admin.priv.c_str(), 0600);
    std::ofstream(dir.path() + "/junk.pub") << "not a key\n";
    auto junk = TrustedKeys::load({dir.path() + "/junk.pub"});
    REQUIRE_FALSE(junk.has_value());
    CHECK(junk.error().message.find("is not a PEM public key") != std::string::npos);
    CHECK_FALSE(TrustedKeys::load({dir.path() + "/missing.pub"}).has_value());
    CHECK_FALSE(TrustedKeys::load({admin.priv}).has_value());  // a private key where a public one belongs
}

TEST_CASE("signing: malformed signature fields do not decode; serials only grow") {
    CHECK_FALSE(decodeTask(R"({"task":"a","secrets":"x","identity":"root","serial":1,"signer":"ab","signature":"AA=="})")
                    .has_value());
    CHECK_FALSE(decodeTask(R"({"task":"a","secrets":"x","identity":"root","signer":"ab"})").has_value());
    CHECK(nextSerial(0) > 1600000000000000ull);  // microseconds since 1970
    const std::uint64_t far = 1ull << 62;
    CHECK(nextSerial(far) == far + 1);  // a clock behind the record it replaces
}

TEST_CASE("serial floor: persisted, only raised, a damaged file refused") {
    TempDir dir;
    {
        auto floor = SerialFloor::open(dir.path());
        REQUIRE(floor.has_value());
        CHECK(floor->at("/k") == 0);
        floor->raise("/k", 10);
        floor->raise("/k", 5);
        CHECK(floor->at("/k") == 10);
        REQUIRE(floor->save().has_value());
    }
    struct stat st {};
    REQUIRE(::stat((dir.path() + "/cluster-serials.json").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto again = SerialFloor::open(dir.path());
    REQUIRE(again.has_value());
    CHECK(again->at("/k") == 10);
    std::ofstream(dir.path() + "/cluster-serials.json") << "{\"/k\": -1}";
    auto damaged = SerialFloor::open(dir.path());
    REQUIRE_FALSE(damaged.has_value());
    CHECK(damaged.error().message.find("is damaged") != std::string::npos);
}
