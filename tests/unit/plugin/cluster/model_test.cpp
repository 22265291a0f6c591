#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/cluster/base64.hpp"
#include "plugin/cluster/model.hpp"

using namespace secretshim::cluster;

TEST_CASE("names: letters, digits, '.', '_', '-'; no slash, no dot-dot") {
    CHECK(checkName("node", "node-1"));
    CHECK(checkName("secret", "db_pass.v2"));
    for (const char* bad : {"", "a/b", "..", "a..b", ".hidden", "-x", "a b", "node\n1", "/"}) {
        auto r = checkName("node", bad);
        CHECK_FALSE(r);
        if (!r) CHECK(r.error().message.find('\n') == std::string::npos);
    }
    CHECK_FALSE(checkName("task", std::string(129, 'a')));
}

TEST_CASE("secret names: the grammar of a node's local store, at most 64 characters") {
    CHECK(checkName("secret", std::string(64, 's')));
    CHECK(checkName("task", std::string(65, 't')));
    auto r = checkName("secret", std::string(65, 's'));
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "secret name \"" + std::string(65, 's') + "\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
}

TEST_CASE("keys: a node's prefix ends with a slash and covers its records only") {
    CHECK(nodePrefix("node-1") == "/secretshim/nodes/node-1/");
    CHECK(taskKey("node-1", "t1") == "/secretshim/nodes/node-1/tasks/t1");
    CHECK(nodeSecretKey("node-1", "s", 7) == "/secretshim/nodes/node-1/secrets/s/00000000000000000007");
    // Versions sort as their keys do: a range below one version's key holds
    // every lower version.
    CHECK(nodeSecretKey("node-1", "s", 9) < nodeSecretKey("node-1", "s", 10));
    CHECK(nodeSecretKey("node-1", "s", 10).rfind(nodeSecretPrefix("node-1", "s"), 0) == 0);
    CHECK(publishedKey("0a1b").rfind(nodesPrefix(), 0) == std::string::npos);
    CHECK(taskIndexKey("t1").rfind(nodesPrefix(), 0) == std::string::npos);
    CHECK(masterKey("s").rfind(nodesPrefix(), 0) == std::string::npos);
    CHECK(registrationKey("node-1").rfind(nodesPrefix(), 0) == std::string::npos);
    auto ref = parseNodeKey("/secretshim/nodes/node-1/tasks/t1");
    REQUIRE(ref.has_value());
    CHECK(ref->node == "node-1");
    CHECK(ref->kind == NodeKeyRef::Kind::task);
    CHECK(ref->name == "t1");
    ref = parseNodeKey("/secretshim/nodes/node-1/secrets/db/18446744073709551615");
    REQUIRE(ref.has_value());
    CHECK(ref->kind == NodeKeyRef::Kind::secret);
    CHECK(ref->name == "db");
    CHECK(ref->version == 18446744073709551615u);
    for (const char* bad : {"/secretshim/nodes/node-1/other/x", "/secretshim/nodes/node-1/tasks/a/b",
                            "/secretshim/nodes/node-1/tasks/..", "/secretshim/secrets/x", "/secretshim/nodes/n",
                            "/secretshim/nodes/node-1/secrets/db", "/secretshim/nodes/node-1/secrets/db/7",
                            "/secretshim/nodes/node-1/secrets/db/00000000000000000000",
                            "/secretshim/nodes/node-1/secrets/db/0000000000000000000x",
                            "/secretshim/nodes/node-1/secrets/db/+0000000000000000001",
                            "/secretshim/nodes/node-1/secrets/db/000000000000000000001",
                            "/secretshim/nodes/node-1/secrets/db/99999999999999999999"})
        CHECK_FALSE(parseNodeKey(bad).has_value());
}

TEST_CASE("records round-trip and refuse bad fields") {
    TaskAssignment t;
    t.task = "web-1";
    t.secrets = "db_pass;source=api,target=/etc/api,mode=0400";
    t.identity = *parseBinding("kubernetes,namespace=tenant-a,pod=web-*");
    t.maxContainers = 3;
    t.signal = 1;
    auto t2 = decodeTask(encodeTask(t));
    REQUIRE(t2.has_value());
    CHECK(t2->task == t.task);
    CHECK(t2->secrets == t.secrets);
    CHECK(t2->identity.text() == "kubernetes,namespace=tenant-a,pod=web-*");
    CHECK(t2->maxContainers == 3);
    CHECK(t2->signal == 1);
    CHECK_FALSE(decodeTask(R"({"task":"a/b","secrets":"","identity":"root"})").has_value());
    CHECK_FALSE(decodeTask(R"({"task":"a","secrets":1,"identity":"root"})").has_value());
    CHECK_FALSE(decodeTask(R"({"task":"a","secrets":"","signal":99,"identity":"root"})").has_value());
    CHECK_FALSE(decodeTask("[1,2").has_value());
    CHECK(decodeTask(R"({"task":"a","secrets":"x","identity":"root"})")->maxContainers == 1);
}

TEST_CASE("a published version and a task placement round-trip; their signatures cover their fields") {
    Published p{"0a1b2c", 7, {12, "signer", std::string(64, 's')}};
    auto p2 = decodePublished(encodePublished(p));
    REQUIRE(p2.has_value());
    CHECK(p2->id == "0a1b2c");
    CHECK(p2->version == 7);
    CHECK(p2->sig == p.sig);
    for (const char* bad : {R"({"id":"","version":1})", R"({"id":"x","version":0})", R"({"id":"x"})", "[]"})
        CHECK_FALSE(decodePublished(bad).has_value());
    Published later = p;
    later.version = 8;
    CHECK(signedMessage(publishedKey("0a1b2c"), p) != signedMessage(publishedKey("0a1b2c"), later));
    CHECK(signedMessage(publishedKey("0a1b2c"), p) != signedMessage(publishedKey("0a1b2d"), p));

    TaskPlacement placed;
    placed.node = "node-3";
    placed.task.task = "t1";
    placed.task.secrets = "db";
    placed.task.identity = *parseBinding("root");
    placed.sig = {5, "signer", std::string(64, 's')};
    auto placed2 = decodePlacement(encodePlacement(placed));
    REQUIRE(placed2.has_value());
    CHECK(placed2->node == "node-3");
    CHECK(placed2->task.task == "t1");
    CHECK(placed2->task.secrets == "db");
    CHECK(placed2->sig == placed.sig);
    auto noNode = decodePlacement(R"({"task":"t1","secrets":"db","identity":"root"})");
    REQUIRE_FALSE(noNode.has_value());
    CHECK(noNode.error().message == "task placement: missing or invalid field \"node\"");
    // Another node is another message: a placement moved is not signed.
    TaskPlacement moved = placed;
    moved.node = "node-4";
    CHECK(signedMessage(taskIndexKey("t1"), placed) != signedMessage(taskIndexKey("t1"), moved));
    // Not a node's task record: the kinds differ.
    CHECK(signedMessage(taskKey("node-3", "t1"), placed.task).find("task placement") == std::string::npos);
}

TEST_CASE("a holder record round-trips; its signature covers the node") {
    Holder h{"db", "web.1", "node-3", {4, "signer", std::string(64, 's')}};
    auto back = decodeHolder(encodeHolder(h));
    REQUIRE(back.has_value());
    CHECK(back->secret == "db");
    CHECK(back->task == "web.1");
    CHECK(back->node == "node-3");
    CHECK(back->sig == h.sig);
    CHECK(holderKey("db", "web.1") == "/secretshim/holders/db/web.1");
    CHECK(holderKey("db", "web.1").rfind(holdersPrefix("db"), 0) == 0);
    CHECK(holderKey("db2", "x").rfind(holdersPrefix("db"), 0) == std::string::npos);
    Holder elsewhere = h;
    elsewhere.node = "node-4";
    CHECK(signedMessage(holderKey("db", "web.1"), h) != signedMessage(holderKey("db", "web.1"), elsewhere));
    for (const char* bad : {R"({"secret":"db","task":"t"})", R"({"secret":"../x","task":"t","node":"n"})",
                            R"({"secret":"db","task":"t/u","node":"n"})"})
        CHECK_FALSE(decodeHolder(bad).has_value());
}

TEST_CASE("a service record round-trips; its signature covers its grants") {
    Service svc;
    svc.name = "web";
    svc.grants.secrets = "db;source=api,target=/etc/api";
    svc.grants.identity = *parseBinding("kubernetes,namespace=shop");
    svc.grants.maxContainers = 4;
    svc.sig = {9, "signer", std::string(64, 's')};
    auto back = decodeService(encodeService(svc));
    REQUIRE(back.has_value());
    CHECK(back->name == "web");
    CHECK(back->grants.secrets == svc.grants.secrets);
    CHECK(back->grants.identity.text() == "kubernetes,namespace=shop");
    CHECK(back->grants.maxContainers == 4);
    CHECK(back->sig == svc.sig);
    CHECK(encodeService(svc).find("\"task\"") == std::string::npos);
    auto bad = decodeService(R"({"service":"web","secrets":"db"})");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message == "service record: missing or invalid field \"identity\"");
    Service wider = svc;
    wider.grants.secrets += ";other";
    CHECK(signedMessage(serviceKey("web"), svc) != signedMessage(serviceKey("web"), wider));
    // A placement names its service: moving a task to another service is another message.
    TaskPlacement p;
    p.node = "n";
    p.task = svc.grants;
    p.task.task = "web.1";
    TaskPlacement q = p;
    q.service = "web";
    CHECK(signedMessage(taskIndexKey("web.1"), p) != signedMessage(taskIndexKey("web.1"), q));
    auto placed = decodePlacement(encodePlacement(q));
    REQUIRE(placed.has_value());
    CHECK(placed->service == "web");
}

TEST_CASE("a task record without a valid identity binding is refused: it reaches nobody") {
    auto none = decodeTask(R"({"task":"a","secrets":"x"})");
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().message == "task record: missing or invalid field \"identity\"");
    auto bad = decodeTask(R"({"task":"a","secrets":"x","identity":"everyone"})");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("must start with kubernetes, podman or root") != std::string::npos);
    auto pinned = decodeTask(R"({"task":"a","secrets":"x","identity":"root,target=/x"})");
    REQUIRE_FALSE(pinned.has_value());
    CHECK(pinned.error().message.find("pins a target, owner or mode") != std::string::npos);
    for (const char* max : {"0", "-1", "100001", "\"2\""})
        CHECK_FALSE(decodeTask(std::string(R"({"task":"a","secrets":"x","identity":"root","max_containers":)") + max +
                               "}")
                        .has_value());

    NodeSecret s{"db", "abc", 2, {std::string(32, 'e'), std::string(12, 'n'), "ct", std::string(16, 't')}, {}};
    auto s2 = decodeNodeSecret(encodeNodeSecret(s));
    REQUIRE(s2.has_value());
    CHECK(s2->version == 2);
    CHECK(s2->sealed.epk == s.sealed.epk);
    CHECK(s2->sealed.ciphertext == "ct");
    s.sealed.epk = "short";
    CHECK_FALSE(decodeNodeSecret(encodeNodeSecret(s)).has_value());
    CHECK_FALSE(decodeNodeSecret(R"({"name":"db","id":"x","version":-1})").has_value());

    MasterSecret m{"db", "abc", 1, 10, 11, 5, {"", std::string(12, 'n'), "ct", std::string(16, 't')}};
    auto m2 = decodeMaster(encodeMaster(m));
    REQUIRE(m2.has_value());
    CHECK(m2->size == 5);
    CHECK(m2->created == 10);

    NodeRegistration r{"node-1", std::string(32, 'k'), {}};
    auto r2 = decodeRegistration(encodeRegistration(r));
    REQUIRE(r2.has_value());
    CHECK(r2->publicKey == r.publicKey);
}

TEST_CASE("base64: round trip, canonical form only") {
    for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff", 2)}) {
        auto d = base64Decode(base64Encode(s));
        REQUIRE(d.has_value());
        CHECK(*d == s);
    }
    CHECK(base64Encode("foobar") == "Zm9vYmFy");
    for (const char* bad : {"Zm9", "Zm9v=", "Zg=a", "Zh==", "====", "Zm 9", "Z===", "Zm9v\n"})
        CHECK_FALSE(base64Decode(bad).has_value());
}

TEST_CASE("base64: characters outside the alphabet and surrounding whitespace are refused") {
    for (const char* bad : {"Zm9*", "Zm9 vYmF", "  Zm9vYmFy  ", "Zm9vYmFy\n\n\n\n", "Zm9v\tYmF", "Zm=vYmFy", "Zm9v_-8="})
        CHECK_FALSE(base64Decode(bad).has_value());
    CHECK(base64Decode("Zm8=") == std::optional<std::string>("fo"));
    CHECK(base64Decode("Zg==") == std::optional<std::string>("f"));
}
