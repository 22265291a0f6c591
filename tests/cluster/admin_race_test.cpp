// secretshimctl's guarded writes against a real cluster (started by
// tests/cluster/with_cluster.sh; part of the etcd_client test program): a
// second admin command is run exactly between one command's reads and its
// transaction (ClusterAdmin's beforeCommit hook), and the invariants are
// checked afterwards:
//   * no assignment references a secret that does not exist;
//   * every secret a node's task uses has a copy under that node, at the
//     master's current version.
// Without the range guards (`txnUnchangedSince`), `secret rm` deletes a
// secret that the racing `task assign` has just granted.
#include <unistd.h>

#include <cstdlib>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "mountfs/secret_ref.hpp"
#include "plugin/cluster/envelope.hpp"
#include "plugin/cluster/etcd_client.hpp"
#include "tests/cluster/test_env.hpp"
#include "plugin/cluster/model.hpp"
#include "plugin/cluster/signing.hpp"
#include "plugin/cluster/cluster_admin.hpp"
#include "tests/support/ed25519_key.hpp"

using namespace secretshim;
using namespace secretshim::cluster;
using secretshim::cluster_test::env;
using secretshim::cluster_test::readFile;
using secretshim::cluster::ClusterAdmin;

namespace {

std::unique_ptr<EtcdClient> rootClient() {
    const std::string pki = env("ETCD_PKI");
    EtcdSettings s;
    std::stringstream in(env("ETCD_ENDPOINTS"));
    for (std::string e; std::getline(in, e, ',');) s.endpoints.push_back(e);
    s.caFile = pki + "/ca.crt";
    s.certFile = pki + "/admin.crt";
    s.keyFile = pki + "/admin.key";
    auto c = EtcdClient::create(std::move(s));
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
    return std::move(*c);
}

const std::string& clusterKeyPath() {
    static const std::string path = env("ETCD_DIR") + "/race-cluster.key";
    return path;
}

// A task bound to containers started by root, with the given specs.
Result<void> assign(ClusterAdmin& admin, const std::string& task, const std::string& node, const std::string& specs) {
    TaskAssignment t;
    t.task = task;
    t.secrets = specs;
    return admin.assignTask(node, t);
}

// The admin's Ed25519 signing key, made once per cluster (as `openssl
// genpkey -algorithm ed25519` makes it).
AdminSigningKey signingKey() {
    const std::string path = env("ETCD_DIR") + "/race-signing.key";
    if (::access(path.c_str(), F_OK) != 0) REQUIRE(secretshim::test::writeEd25519Key(path));
    auto key = AdminSigningKey::load(path);
    REQUIRE_MESSAGE(key.has_value(), (key ? "" : key.error().message));
    return std::move(*key);
}

std::unique_ptr<ClusterAdmin> admin() {
    auto key = ClusterKey::loadOrCreate(clusterKeyPath());
    REQUIRE_MESSAGE(key.has_value(), (key ? "" : key.error().message));
    return std::make_unique<ClusterAdmin>(rootClient(), std::move(*key), signingKey());
}

SecureBuffer value(const std::string& text) {
    auto b = SecureBuffer::allocate(text.size());
    REQUIRE(b.has_value());
    std::copy(text.begin(), text.end(), b->data());
    return std::move(*b);
}

// One client for the checks (each new client costs an authentication).
EtcdClient& checker() {
    static std::unique_ptr<EtcdClient> c = rootClient();
    return *c;
}

// A fresh cluster state: nodes node-1 and node-2 registered, no secrets.
void reset() {
    REQUIRE(checker().remove("/secretshim/", true).has_value());
    auto a = admin();
    for (const char* node : {"node-1", "node-2"}) {
        auto pair = NodeKeyPair::generate();
        REQUIRE(pair.has_value());
        REQUIRE(a->addNode(node, pair->publicKey()).has_value());
    }
}

// The invariants; returns "" or what is broken.
std::string broken() {
    auto masters = checker().range(mastersPrefix(), true);
    auto nodes = checker().range(nodesPrefix(), true);
    REQUIRE(masters.has_value());
    REQUIRE(nodes.has_value());
    std::map<std::string, std::uint64_t> version;
    for (const auto& kv : masters->kvs)
        if (auto m = decodeMaster(kv.value)) version[m->name] = m->version;
    std::map<std::string, std::uint64_t> copies;  // node/name -> version
    for (const auto& kv : nodes->kvs) {
        auto ref = parseNodeKey(kv.key);
        if (ref && ref->kind == NodeKeyRef::Kind::secret)
            if (auto s = decodeNodeSecret(kv.value)) copies[ref->node + "/" + s->name] = s->version;
    }
    for (const auto& kv : nodes->kvs) {
        auto ref = parseNodeKey(kv.key);
        if (!ref || ref->kind != NodeKeyRef::Kind::task) continue;
        auto task = decodeTask(kv.value);
        REQUIRE(task.has_value());
        auto refs = mountfs::parseSecretRefs(task->secrets);
        REQUIRE(refs.has_value());
        for (const auto& r : *refs) {
            if (!version.count(r.source)) return "task " + ref->name + " references missing secret " + r.source;
            const auto copy = copies.find(ref->node + "/" + r.source);
            if (copy == copies.end()) return "task " + ref->name + ": no copy of " + r.source + " on " + ref->node;
            if (copy->second != version[r.source])
                return "task " + ref->name + ": the copy of " + r.source + " on " + ref->node + " is at version " +
                       std::to_string(copy->second) + ", the master at " + std::to_string(version[r.source]);
        }
    }
    return "";
}

// Runs `racer` once, the first time `victim` is about to commit.
void interleave(ClusterAdmin& victim, std::function<void()> racer) {
    auto once = std::make_shared<bool>(false);
    victim.setBeforeCommit([once, racer = std::move(racer)] {
        if (*once) return;
        *once = true;
        racer();
    });
}

}  // namespace

TEST_CASE("rm's scan, then an assign, then rm's commit: rm is refused, the assignment stands") {
    reset();
    auto a = admin();
    auto b = admin();
    REQUIRE(a->createSecret("db", value("race-value-1")).has_value());
    interleave(*a, [&] { REQUIRE(assign(*b, "t1", "node-1", "db").has_value()); });
    auto rm = a->removeSecret("db");
    REQUIRE_FALSE(rm.has_value());
    CHECK(rm.error().message.find("is assigned to task \"t1\"") != std::string::npos);
    CHECK(rm.error().message.find('\n') == std::string::npos);
    CHECK(broken() == "");
}

TEST_CASE("assign's reads, then an rm, then assign's commit: assign says the secret is gone") {
    reset();
    auto a = admin();
    auto b = admin();
    REQUIRE(a->createSecret("db", value("race-value-2")).has_value());
    interleave(*a, [&] { REQUIRE(b->removeSecret("db").has_value()); });
    auto assigned = assign(*a, "t1", "node-1", "db");
    REQUIRE_FALSE(assigned.has_value());
    CHECK(assigned.error().message.find("not found") != std::string::npos);
    CHECK(broken() == "");
    auto task = checker().range(taskKey("node-1", "t1"), false);
    REQUIRE(task.has_value());
    CHECK(task->kvs.empty());
}

TEST_CASE("unassign's scan, then an assign sharing its secret on the node: the shared copy stays") {
    reset();
    auto a = admin();
    auto b = admin();
    REQUIRE(a->createSecret("db", value("race-value-3")).has_value());
    REQUIRE(assign(*a, "t1", "node-1", "db").has_value());
    interleave(*a, [&] { REQUIRE(assign(*b, "t2", "node-1", "db").has_value()); });
    auto node = a->unassignTask("t1");
    REQUIRE_MESSAGE(node.has_value(), (node ? "" : node.error().message));
    CHECK(*node == "node-1");
    CHECK(broken() == "");
}

TEST_CASE("rotate's scan, then an assign on another node: that node gets the new version") {
    reset();
    auto a = admin();
    auto b = admin();
    REQUIRE(a->createSecret("db", value("race-value-4")).has_value());
    REQUIRE(assign(*a, "t1", "node-1", "db").has_value());
    interleave(*a, [&] { REQUIRE(assign(*b, "t2", "node-2", "db").has_value()); });
    auto version = a->rotateSecret("db", value("race-value-5"));
    REQUIRE_MESSAGE(version.has_value(), (version ? "" : version.error().message));
    CHECK(*version == 2);
    CHECK(broken() == "");
}

TEST_CASE("two assigns of one task to two nodes at once: one of them is refused") {
    reset();
    auto a = admin();
    auto b = admin();
    REQUIRE(a->createSecret("db", value("race-value-6")).has_value());
    interleave(*a, [&] { REQUIRE(assign(*b, "t1", "node-2", "db").has_value()); });
    auto assigned = assign(*a, "t1", "node-1", "db");
    REQUIRE_FALSE(assigned.has_value());
    CHECK(assigned.error().message.find("assigned to node \"node-2\"") != std::string::npos);
    CHECK(broken() == "");
}

TEST_CASE("rm and assign in two threads, 8 rounds: the invariant holds after each") {
    reset();
    auto a = admin();
    auto b = admin();
    int removed = 0;
    int assigned = 0;
    for (int round = 0; round < 8; ++round) {
        const std::string task = "loop" + std::to_string(round);
        REQUIRE(a->createSecret("s", value("race-loop-" + std::to_string(round))).has_value());
        bool rmOk = false;
        bool assignOk = false;
        // The rm starts 0 to 28 ms later, sweeping across the assign's
        // reads and commit (an assign takes ~5 requests, an rm 3).
        std::thread rm([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(4 * round));
            rmOk = a->removeSecret("s").has_value();
        });
        std::thread assigner([&] { assignOk = assign(*b, task, "node-1", "s").has_value(); });
        rm.join();
        assigner.join();
        INFO("round " << round);
        CHECK(rmOk != assignOk);  // exactly one wins
        CHECK(broken() == "");
        removed += rmOk;
        assigned += assignOk;
        if (assignOk) {
            REQUIRE(a->unassignTask(task).has_value());
            REQUIRE(a->removeSecret("s").has_value());
        }
    }
    MESSAGE("rm won " << removed << ", assign won " << assigned << " of 8 rounds");
    // Leave the cluster empty for the other test cases of this program.
    REQUIRE(checker().remove("/secretshim/", true).has_value());
}
