// The etcd client against a real 3-member cluster with TLS and RBAC, started
// by tests/cluster/with_cluster.sh: reads and writes, RBAC per node, bad TLS
// material, watch with failover after a killed member, a hung member caught
// by the heartbeat, and a full resync after compaction.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "plugin/cluster/etcd_client.hpp"
#include "tests/cluster/test_env.hpp"
#include "plugin/cluster/model.hpp"

using namespace secretshim;
using namespace secretshim::cluster;
using secretshim::cluster_test::env;
using secretshim::cluster_test::readFile;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');) out.push_back(item);
    return out;
}

// A client as `who` ("admin" is root; "node-1", "node-2" are nodes).
EtcdSettings settingsFor(const std::string& who) {
    const std::string pki = env("ETCD_PKI");
    EtcdSettings s;
    s.endpoints = split(env("ETCD_ENDPOINTS"));
    s.caFile = pki + "/ca.crt";
    s.certFile = pki + "/" + who + ".crt";
    s.keyFile = pki + "/" + who + ".key";
    s.timeout = 3s;
    s.watchSilence = 3500ms;
    return s;
}

std::unique_ptr<EtcdClient> client(const std::string& who) {
    auto c = EtcdClient::create(settingsFor(who));
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
    return std::move(*c);
}

void member(const std::string& m, const char* action, const char* sig = "") {
    const std::string cmd = "sh " + env("ETCD_CLUSTER_SCRIPT") + " " + action + " " + env("ETCD_DIR") + " " + m + " " +
                            sig + " >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
}

std::string memberOf(const std::string& endpoint) {
    const auto eps = split(env("ETCD_ENDPOINTS"));
    for (std::size_t i = 0; i < eps.size(); ++i)
        if (eps[i] == endpoint) return "m" + std::to_string(i + 1);
    return "";
}

// Collects the watch's events in a thread, reconnecting like the agent does.
struct Watcher {
    EtcdClient& c;
    std::string prefix;
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::vector<std::string> keys;  // put keys, in order
    std::int64_t last = 0;
    std::vector<WatchEnd> ends;
    std::size_t progress = 0;  // progress notifications
    std::thread thread;

    Watcher(EtcdClient& client, std::string p, std::int64_t from) : c(client), prefix(std::move(p)), last(from - 1) {
        thread = std::thread([this] { run(); });
    }
    ~Watcher() {
        stop = true;
        c.interruptWatch();
        thread.join();
    }
    void run() {
        while (!stop) {
            std::int64_t from;
            {
                std::lock_guard lock(mutex);
                from = last + 1;
            }
            auto end = c.watch({prefix}, from, [this](const WatchMessage& m) {
                std::lock_guard lock(mutex);
                if (m.progress()) ++progress;
                for (const auto& e : m.events) {
                    if (e.kv.modRevision <= last) continue;
                    if (e.type == WatchEvent::Type::put) keys.push_back(e.kv.key);
                    last = e.kv.modRevision;
                }
            }, stop);
            std::lock_guard lock(mutex);
            ends.push_back(end);
            if (end.reason == WatchEnd::Reason::compacted) return;
            if (!stop) std::this_thread::sleep_for(50ms);
        }
    }
    std::size_t count() {
        std::lock_guard lock(mutex);
        return keys.size();
    }
    bool waitFor(std::size_t n, std::chrono::seconds limit = 20s) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            if (count() >= n) return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }
    bool endedWith(WatchEnd::Reason r) {
        std::lock_guard lock(mutex);
        for (const auto& e : ends)
            if (e.reason == r) return true;
        return false;
    }
};

}  // namespace

TEST_CASE("put, range, txn and delete as the admin") {
    auto admin = client("admin");
    auto put = admin->put("/secretshim/test/a", "value-a");
    REQUIRE_MESSAGE(put.has_value(), (put ? "" : put.error().message));
    CHECK(put->revision > 0);
    auto r = admin->range("/secretshim/test/", true);
    REQUIRE(r.has_value());
    REQUIRE(r->kvs.size() == 1);
    CHECK(r->kvs[0].value == "value-a");
    // Create-if-absent: the second one fails and reads the existing value.
    const nlohmann::json body = {{"compare", {txnAbsent("/secretshim/test/b")}},
                                 {"success", {txnPut("/secretshim/test/b", "first")}},
                                 {"failure", {txnRange("/secretshim/test/b")}}};
    auto t1 = admin->txn(body);
    REQUIRE(t1.has_value());
    CHECK(t1->succeeded);
    auto t2 = admin->txn(body);
    REQUIRE(t2.has_value());
    CHECK_FALSE(t2->succeeded);
    REQUIRE(t2->ranges.size() == 1);
    REQUIRE(t2->ranges[0].kvs.size() == 1);
    CHECK(t2->ranges[0].kvs[0].value == "first");
    auto del = admin->remove("/secretshim/test/", true);
    REQUIRE(del.has_value());
    CHECK(del->deleted == 2);
}

TEST_CASE("RBAC: a node reads its own prefix only, and writes nothing") {
    auto admin = client("admin");
    REQUIRE(admin->put(taskKey("node-1", "t1"), "one").has_value());
    REQUIRE(admin->put(taskKey("node-2", "t2"), "two").has_value());
    REQUIRE(admin->put("/secretshim/nodes/node-10/tasks/t3", "ten").has_value());
    auto n1 = client("node-1");
    auto own = n1->range(nodePrefix("node-1"), true);
    REQUIRE_MESSAGE(own.has_value(), (own ? "" : own.error().message));
    REQUIRE(own->kvs.size() == 1);
    CHECK(own->kvs[0].value == "one");
    auto other = n1->range(nodePrefix("node-2"), true);
    REQUIRE_FALSE(other.has_value());
    CHECK(other.error().code == EACCES);
    CHECK(other.error().message.find("permission denied") != std::string::npos);
    // The trailing slash: node-1 does not cover node-10.
    CHECK_FALSE(n1->range(nodePrefix("node-10"), true).has_value());
    CHECK_FALSE(n1->range("/secretshim/nodes/", true).has_value());
    CHECK_FALSE(n1->put(taskKey("node-1", "mine"), "x").has_value());
    CHECK_FALSE(n1->range(masterKey("anything"), false).has_value());
    // And the other way round: node-2's credentials cannot read node-1's
    // prefix, by range or by watch.
    auto n2 = client("node-2");
    auto theirs = n2->range(nodePrefix("node-1"), true);
    REQUIRE_FALSE(theirs.has_value());
    CHECK(theirs.error().code == EACCES);
    CHECK(theirs.error().message.find("permission denied") != std::string::npos);
    CHECK_FALSE(n2->range(taskKey("node-1", "t1"), false).has_value());
    std::atomic<bool> stop{false};
    std::size_t events = 0;
    auto end = n2->watch({nodePrefix("node-1")}, 0, [&](const WatchMessage& m) { events += m.events.size(); }, stop);
    MESSAGE("node-2 watching node-1: " << end.message);
    CHECK(end.reason != WatchEnd::Reason::stopped);
    CHECK(end.message.find("permission denied") != std::string::npos);
    CHECK(events == 0);
    REQUIRE(admin->remove("/secretshim/nodes/", true).has_value());
}

TEST_CASE("bad TLS material and credentials are one clear error") {
    const std::string pki = env("ETCD_PKI");
    auto s = settingsFor("node-1");
    s.caFile = pki + "/missing.crt";
    auto missing = EtcdClient::create(s);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.find("CA certificate") != std::string::npos);

    // A CA that did not sign the members: the handshake fails on every endpoint.
    const std::string other = env("ETCD_DIR") + "/other-ca.crt";
    REQUIRE(std::system(("openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -keyout " +
                         env("ETCD_DIR") + "/other-ca.key -out " + other + " -subj /CN=other >/dev/null 2>&1")
                            .c_str()) == 0);
    s = settingsFor("node-1");
    s.caFile = other;
    auto wrongCa = EtcdClient::create(s);
    REQUIRE(wrongCa.has_value());
    auto r = (*wrongCa)->range(nodePrefix("node-1"), true);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("TLS handshake failed") != std::string::npos);
    CHECK(r.error().message.find('\n') == std::string::npos);

    // A client certificate the cluster's CA did not sign.
    s = settingsFor("node-1");
    s.certFile = other;
    s.keyFile = env("ETCD_DIR") + "/other-ca.key";
    auto wrongCert = EtcdClient::create(s);
    REQUIRE(wrongCert.has_value());
    auto refused = (*wrongCert)->range(nodePrefix("node-1"), true);
    REQUIRE_FALSE(refused.has_value());
    MESSAGE("foreign client certificate: " << refused.error().message);
    CHECK(refused.error().message.find('\n') == std::string::npos);
    CHECK(refused.error().message.find("does it trust the client certificate") != std::string::npos);

    // An expired client certificate signed by the cluster's CA: refused
    // when loaded, by name, before any connection.
    const std::string dir = env("ETCD_DIR");
    REQUIRE(std::system(("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /O=expired -keyout " +
                         dir + "/expired.key -out " + dir + "/expired.csr >/dev/null 2>&1 && " +
                         "printf 'extendedKeyUsage=clientAuth\\n' >" + dir + "/expired.ext && " +
                         "openssl x509 -req -in " + dir + "/expired.csr -CA " + pki + "/ca.crt -CAkey " + pki +
                         "/ca.key -CAserial " + dir + "/expired.srl -CAcreateserial -days -1 -extfile " + dir +
                         "/expired.ext -out " + dir + "/expired.crt >/dev/null 2>&1")
                            .c_str()) == 0);
    s = settingsFor("node-1");
    s.certFile = dir + "/expired.crt";
    s.keyFile = dir + "/expired.key";
    auto expired = EtcdClient::create(s);
    REQUIRE_FALSE(expired.has_value());
    MESSAGE(expired.error().message);
    CHECK(expired.error().message.find("expired on") != std::string::npos);
    CHECK(expired.error().message.find('\n') == std::string::npos);

    // A key that does not match the certificate.
    s = settingsFor("node-1");
    s.keyFile = pki + "/node-2.key";
    auto mismatch = EtcdClient::create(s);
    REQUIRE_FALSE(mismatch.has_value());
    CHECK(mismatch.error().message.find("does not match") != std::string::npos);

    // A certificate of the cluster's CA whose CN is no etcd user: etcd
    // takes the CN as the user and refuses it.
    REQUIRE(std::system(("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=stranger -keyout " +
                         dir + "/stranger.key -out " + dir + "/stranger.csr >/dev/null 2>&1 && " +
                         "openssl x509 -req -in " + dir + "/stranger.csr -CA " + pki + "/ca.crt -CAkey " + pki +
                         "/ca.key -CAserial " + dir + "/expired.srl -days 1 -extfile " + dir +
                         "/expired.ext -out " + dir + "/stranger.crt >/dev/null 2>&1 && chmod 600 " + dir + "/stranger.key")
                            .c_str()) == 0);
    s = settingsFor("node-1");
    s.certFile = dir + "/stranger.crt";
    s.keyFile = dir + "/stranger.key";
    auto stranger = EtcdClient::create(s);
    REQUIRE(stranger.has_value());
    auto denied = (*stranger)->range(nodePrefix("node-1"), true);
    REQUIRE_FALSE(denied.has_value());
    MESSAGE("a CN that is no user: " << denied.error().message);
    CHECK(denied.error().message.find('\n') == std::string::npos);
    CHECK(denied.error().message.find("etcd https://127.0.0.1:") == 0);

    s.endpoints = {"http://127.0.0.1:1"};
    auto plain = EtcdClient::create(s);
    REQUIRE_FALSE(plain.has_value());
    CHECK(plain.error().message.find("TLS only") != std::string::npos);
}

TEST_CASE("watch: a killed member fails over and resumes with nothing missed") {
    auto admin = client("admin");
    auto node = client("node-1");
    const std::string prefix = nodePrefix("node-1");
    auto start = admin->put(taskKey("node-1", "w0"), "0");
    REQUIRE(start.has_value());
    Watcher w(*node, prefix, start->revision + 1);
    for (int i = 1; i <= 20; ++i) REQUIRE(admin->put(taskKey("node-1", "w" + std::to_string(i)), "v").has_value());
    REQUIRE(w.waitFor(20));
    const std::string victim = memberOf(node->endpoint());
    REQUIRE_FALSE(victim.empty());
    member(victim, "signal", "KILL");
    for (int i = 21; i <= 40; ++i) REQUIRE(admin->put(taskKey("node-1", "w" + std::to_string(i)), "v").has_value());
    CHECK(w.waitFor(40));
    CHECK(memberOf(node->endpoint()) != victim);
    member(victim, "restart");
    std::set<std::string> unique;
    {
        std::lock_guard lock(w.mutex);
        unique.insert(w.keys.begin(), w.keys.end());
        CHECK(w.keys.size() == 40);  // each event exactly once
    }
    CHECK(unique.size() == 40);
    CHECK(w.endedWith(WatchEnd::Reason::broken));
    REQUIRE(admin->remove("/secretshim/nodes/", true).has_value());
}

TEST_CASE("watch: a hung member (SIGSTOP) is caught by the heartbeat") {
    auto admin = client("admin");
    auto node = client("node-1");
    auto start = admin->put(taskKey("node-1", "h0"), "0");
    REQUIRE(start.has_value());
    Watcher w(*node, nodePrefix("node-1"), start->revision + 1);
    REQUIRE(admin->put(taskKey("node-1", "h1"), "v").has_value());
    REQUIRE(w.waitFor(1));
    const std::string victim = memberOf(node->endpoint());
    member(victim, "signal", "STOP");
    const auto stopped = std::chrono::steady_clock::now();
    // Writes still reach the other two members (quorum holds).
    bool written = false;
    for (int attempt = 0; attempt < 20 && !written; ++attempt) written = admin->put(taskKey("node-1", "h2"), "v").has_value();
    REQUIRE(written);
    const bool resumed = w.waitFor(2, 30s);
    const auto took = std::chrono::steady_clock::now() - stopped;
    member(victim, "signal", "CONT");
    CHECK(resumed);
    CHECK(w.endedWith(WatchEnd::Reason::silent));
    MESSAGE("hung member detected and event received after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    REQUIRE(admin->remove("/secretshim/nodes/", true).has_value());
}

TEST_CASE("a client of one member reaches it again once it is back (no stale connection kept)") {
    auto s = settingsFor("node-1");
    s.endpoints = {split(env("ETCD_ENDPOINTS"))[0]};
    auto c = EtcdClient::create(s);
    REQUIRE(c.has_value());
    REQUIRE((*c)->range(nodePrefix("node-1"), true).has_value());
    member("m1", "signal", "KILL");
    std::this_thread::sleep_for(300ms);
    CHECK_FALSE((*c)->range(nodePrefix("node-1"), true).has_value());
    member("m1", "restart");
    const auto restarted = std::chrono::steady_clock::now();
    bool back = false;
    for (int i = 0; i < 50 && !back; ++i) {
        back = (*c)->range(nodePrefix("node-1"), true).has_value();
        if (!back) std::this_thread::sleep_for(200ms);
    }
    CHECK(back);
    MESSAGE("reached again " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - restarted).count() << " ms after the restart");
}

TEST_CASE("watch: idle on a stock etcd, it stays on its member (the members run without a progress flag)") {
    auto node = client("node-1");  // watchSilence 3.5 s: a progress request after 1.75 s of quiet
    auto at = node->range(nodePrefix("node-1"), true);
    REQUIRE(at.has_value());
    Watcher w(*node, nodePrefix("node-1"), at->revision + 1);
    std::this_thread::sleep_for(12s);
    std::lock_guard lock(w.mutex);
    CHECK(w.ends.empty());       // not once left for being silent
    CHECK(w.progress >= 2);      // the member answered the progress requests
    MESSAGE(w.progress << " progress notifications in 12 s");
}

TEST_CASE("watch: a compacted start revision says so (the caller resyncs)") {
    auto admin = client("admin");
    auto node = client("node-1");
    auto first = admin->put(taskKey("node-1", "c"), "1");
    REQUIRE(first.has_value());
    auto second = admin->put(taskKey("node-1", "c"), "2");
    REQUIRE(second.has_value());
    REQUIRE(admin->compact(second->revision).has_value());
    std::atomic<bool> stop{false};
    auto end = node->watch({nodePrefix("node-1")}, first->revision, [](const WatchMessage&) {}, stop);
    MESSAGE(end.message);
    CHECK(end.reason == WatchEnd::Reason::compacted);
    CHECK(end.compactRevision == second->revision);
    // The resync: a range read, then a watch from its revision + 1.
    auto r = node->range(nodePrefix("node-1"), true);
    REQUIRE(r.has_value());
    REQUIRE(r->kvs.size() == 1);
    CHECK(r->kvs[0].value == "2");
    REQUIRE(admin->remove("/secretshim/nodes/", true).has_value());
}
