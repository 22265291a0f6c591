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
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <cstdlib>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
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
    auto c = cluster_test::rootClient();
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
    return std::move(*c);
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
    const std::string path = cluster_test::raceSigningKeyPath();
    if (::access(path.c_str(), F_OK) != 0) REQUIRE(secretshim::test::writeEd25519Key(path));
    auto key = AdminSigningKey::load(path);
    REQUIRE_MESSAGE(key.has_value(), (key ? "" : key.error().message));
    return std::move(*key);
}

std::unique_ptr<ClusterAdmin> admin() {
    auto key = ClusterKey::loadOrCreate(cluster_test::raceClusterKeyPath());
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

// The invariants; returns "" or what is broken: every task a node holds
// uses secrets that exist, published at the master's version, of which the
// node holds a copy at that version; every task record has its placement,
// and a holder record for each of its sources (and there are no others).
std::string broken() {
    auto masters = checker().range(mastersPrefix(), true);
    auto nodes = checker().range(nodesPrefix(), true);
    auto published = checker().range(publishedPrefix(), true);
    auto placements = checker().range(tasksPrefix(), true);
    REQUIRE(masters.has_value());
    REQUIRE(nodes.has_value());
    REQUIRE(published.has_value());
    REQUIRE(placements.has_value());
    std::map<std::string, MasterSecret> master;
    for (const auto& kv : masters->kvs)
        if (auto m = decodeMaster(kv.value)) master[m->name] = *m;
    std::map<std::string, std::uint64_t> pointer;  // id -> version
    for (const auto& kv : published->kvs)
        if (auto p = decodePublished(kv.value)) pointer[p->id] = p->version;
    std::map<std::string, std::string> placed;  // task -> node
    for (const auto& kv : placements->kvs)
        if (auto p = decodePlacement(kv.value)) placed[p->task.task] = p->node;
    auto holderRecords = checker().range("/secretshim/holders/", true);
    REQUIRE(holderRecords.has_value());
    std::set<std::string> holders;  // secret/task/node
    for (const auto& kv : holderRecords->kvs)
        if (auto h = decodeHolder(kv.value)) holders.insert(h->secret + "/" + h->task + "/" + h->node);
    std::size_t sourcesHeld = 0;
    std::set<std::string> copies;  // node/name/version
    for (const auto& kv : nodes->kvs) {
        auto ref = parseNodeKey(kv.key);
        if (ref && ref->kind == NodeKeyRef::Kind::secret)
            copies.insert(ref->node + "/" + ref->name + "/" + std::to_string(ref->version));
    }
    std::size_t tasks = 0;
    for (const auto& kv : nodes->kvs) {
        auto ref = parseNodeKey(kv.key);
        if (!ref || ref->kind != NodeKeyRef::Kind::task) continue;
        ++tasks;
        if (placed[ref->name] != ref->node) return "task " + ref->name + " on " + ref->node + " has no placement there";
        auto task = decodeTask(kv.value);
        REQUIRE(task.has_value());
        auto refs = mountfs::parseSecretRefs(task->secrets);
        REQUIRE(refs.has_value());
        std::set<std::string> sources;
        for (const auto& r : *refs) sources.insert(r.source);
        for (const auto& source : sources)
            if (!holders.count(source + "/" + ref->name + "/" + ref->node))
                return "task " + ref->name + " on " + ref->node + " has no holder record for " + source;
        sourcesHeld += sources.size();
        for (const auto& r : *refs) {
            const auto m = master.find(r.source);
            if (m == master.end()) return "task " + ref->name + " references missing secret " + r.source;
            const std::uint64_t version = m->second.version;
            if (pointer[m->second.id] != version)
                return "secret " + r.source + " is published at version " + std::to_string(pointer[m->second.id]) +
                       ", the master at " + std::to_string(version);
            if (!copies.count(ref->node + "/" + r.source + "/" + std::to_string(version)))
                return "task " + ref->name + ": no copy of " + r.source + " version " + std::to_string(version) +
                       " on " + ref->node;
        }
    }
    if (placed.size() != tasks) return std::to_string(placed.size()) + " placements for " + std::to_string(tasks) + " tasks";
    if (holders.size() != sourcesHeld)
        return std::to_string(holders.size()) + " holder records for " + std::to_string(sourcesHeld) + " held sources";
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

namespace {

// The versions of `name` that `node` holds a copy of.
std::set<std::uint64_t> versionsOn(const std::string& node, const std::string& name) {
    auto r = checker().range(nodeSecretPrefix(node, name), true);
    REQUIRE(r.has_value());
    std::set<std::uint64_t> out;
    for (const auto& kv : r->kvs)
        if (auto ref = parseNodeKey(kv.key)) out.insert(ref->version);
    return out;
}

MasterSecret masterOf(const std::string& name) {
    auto r = checker().range(masterKey(name), false);
    REQUIRE(r.has_value());
    REQUIRE(r->kvs.size() == 1);
    auto m = decodeMaster(r->kvs[0].value);
    REQUIRE(m.has_value());
    return *m;
}

// tests/cluster/rotate_killed next to this program: a rotation of `name`
// in batches of `ops` operations, SIGKILLed before its `killAt`-th
// transaction. Whether it died of that signal.
bool rotateKilled(const std::string& name, const std::string& text, int ops, int killAt) {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0);
    std::string dir(self, static_cast<std::size_t>(n));
    dir.resize(dir.rfind('/'));
    const std::string command = dir + "/rotate_killed " + name + " " + text + " " + std::to_string(ops) + " " +
                                std::to_string(killAt) + " >/dev/null 2>&1";
    const int status = std::system(command.c_str());
    // system(3) runs it under sh: a child killed by a signal makes sh exit 128 + it.
    return WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL;
}

}  // namespace

TEST_CASE("a rotation in batches, the admin killed before the switch and after it: nodes stay on one version") {
    reset();
    auto a = admin();
    std::vector<std::string> nodes = {"node-1", "node-2"};
    for (const char* extra : {"node-3", "node-4", "node-5"}) {
        auto pair = NodeKeyPair::generate();
        REQUIRE(pair.has_value());
        REQUIRE(a->addNode(extra, pair->publicKey()).has_value());
        nodes.push_back(extra);
    }
    REQUIRE(a->createSecret("db", value("kill-value-1")).has_value());
    for (std::size_t i = 0; i < nodes.size(); ++i) REQUIRE(assign(*a, "t" + std::to_string(i), nodes[i], "db").has_value());
    REQUIRE(broken() == "");

    // Batches of 2: transaction 1 is the claim, 2 to 4 the five copies,
    // 5 the switch, 6 to 8 the old copies' deletes. Killed before the
    // second batch of copies: two nodes hold version 2, none uses it.
    REQUIRE(rotateKilled("db", "kill-value-2", 2, 3));
    CHECK(broken() == "");  // every node on version 1, published
    CHECK(masterOf("db").version == 1);
    CHECK(masterOf("db").staging == 2);
    std::size_t staged = 0;
    for (const auto& node : nodes) {
        const auto held = versionsOn(node, "db");
        CHECK(held.count(1) == 1);
        staged += held.count(2);
    }
    CHECK(staged == 2);

    // The next rotation takes the claim over and writes every node's copy.
    auto version = a->rotateSecret("db", value("kill-value-3"));
    REQUIRE_MESSAGE(version.has_value(), (version ? "" : version.error().message));
    CHECK(*version == 2);
    CHECK(broken() == "");
    CHECK(masterOf("db").staging == 0);
    for (const auto& node : nodes) CHECK(versionsOn(node, "db") == std::set<std::uint64_t>{2});

    // Killed after the switch, before the old copies are deleted: every
    // node on version 3; the version 2 copies stay until the next one.
    REQUIRE(rotateKilled("db", "kill-value-4", 2, 6));
    CHECK(broken() == "");
    CHECK(masterOf("db").version == 3);
    for (const auto& node : nodes) CHECK(versionsOn(node, "db") == std::set<std::uint64_t>{2, 3});
    version = a->rotateSecret("db", value("kill-value-5"));
    REQUIRE(version.has_value());
    CHECK(*version == 4);
    CHECK(broken() == "");
    for (const auto& node : nodes) CHECK(versionsOn(node, "db") == std::set<std::uint64_t>{4});
}

TEST_CASE("a secret held by 130 nodes rotates (etcd takes at most 128 operations per transaction)") {
    reset();
    auto a = admin();
    REQUIRE(a->createSecret("wide", value("wide-value-1")).has_value());
    for (int i = 0; i < 130; ++i) {
        const std::string node = "wide-" + std::to_string(i);
        auto pair = NodeKeyPair::generate();
        REQUIRE(pair.has_value());
        REQUIRE(a->addNode(node, pair->publicKey()).has_value());
        REQUIRE(assign(*a, "w" + std::to_string(i), node, "wide").has_value());
    }
    auto version = a->rotateSecret("wide", value("wide-value-2"));
    REQUIRE_MESSAGE(version.has_value(), (version ? "" : version.error().message));
    CHECK(*version == 2);
    CHECK(broken() == "");
    // A 400 KiB secret on 5 nodes: 2 MiB of copies, over etcd's 1.5 MiB
    // per request.
    REQUIRE(a->createSecret("big", value(std::string(400 * 1024, 'b'))).has_value());
    for (int i = 0; i < 5; ++i)
        REQUIRE(assign(*a, "w" + std::to_string(i), "wide-" + std::to_string(i), "wide;big").has_value());
    version = a->rotateSecret("big", value(std::string(400 * 1024, 'c')));
    REQUIRE_MESSAGE(version.has_value(), (version ? "" : version.error().message));
    CHECK(broken() == "");
    for (int i = 0; i < 130; ++i) REQUIRE(a->removeNode("wide-" + std::to_string(i)).has_value());
}

TEST_CASE("node add in two threads at once: every registration lands (etcd's auth revision race is retried)") {
    reset();
    auto a = admin();
    auto b = admin();
    // Each node add changes etcd's auth store (a user, a role); a request
    // that came in before such a change is refused unapplied ("revision of
    // auth store is old").
    auto adds = [](ClusterAdmin& admin, const std::string& prefix, std::string& error) {
        for (int i = 0; i < 12 && error.empty(); ++i) {
            auto pair = NodeKeyPair::generate();
            if (!pair) return void(error = pair.error().message);
            if (auto ok = admin.addNode(prefix + std::to_string(i), pair->publicKey()); !ok) error = ok.error().message;
        }
    };
    std::string errorA, errorB;
    std::thread ta([&] { adds(*a, "auth-a-", errorA); });
    std::thread tb([&] { adds(*b, "auth-b-", errorB); });
    ta.join();
    tb.join();
    CHECK(errorA == "");
    CHECK(errorB == "");
    auto nodes = a->listNodes();
    REQUIRE(nodes.has_value());
    CHECK(nodes->size() == 2 + 24);
    for (const char* prefix : {"auth-a-", "auth-b-"})
        for (int i = 0; i < 12; ++i) REQUIRE(a->removeNode(prefix + std::to_string(i)).has_value());
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
