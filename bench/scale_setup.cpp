// Scale setup (bench row 8): the bulk of a large cluster written through
// ClusterAdmin in-process, as `secretshimctl` would write it one command at
// a time (forking ten thousand CLI processes would take minutes and time
// the process starts, not the admin side).
//
//   scale_setup CONFIG secrets THREADS SIZE FILE   create each secret of FILE (random bytes)
//   scale_setup CONFIG nodes THREADS FILE          register each node of FILE
//   scale_setup CONFIG assign FILE                 assign each task of FILE, in order
//
// CONFIG: an agent-format YAML with an etcd block for the admin (user root,
// cluster_key, signing_key). FILE for secrets: one name a line. FILE for nodes: one `NODE [STATE_DIR]` a line;
// with STATE_DIR the node's key pair is the one there (made if missing, as
// `secretshimctl node keygen --state-dir` makes it: a live agent's), without
// it a fresh pair whose private half is dropped (a node with no process).
// FILE for assign: one `NODE TASK SECRET...` a line; each task is bound to
// `root` and holds those secrets at /run/secrets/<name>.
//
// Output, machine-readable: one `op KIND NS` line per operation (its own
// duration), then `total KIND COUNT NS` (wall time of them all). Values
// are random bytes, never printed.
//
// secrets and nodes run on THREADS connections at once (no guard spans two
// secrets or two nodes; a node add racing another's change to etcd's auth
// store is sent again by the client); assignments run one after the other,
// as one admin's commands would.
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "plugin/cluster/cluster_admin.hpp"
#include "plugin/cluster/etcd_config.hpp"
#include "plugin/config/agent_config.hpp"
#include "plugin/store/secure_buffer.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using secretshim::cluster::ClusterAdmin;
using secretshim::cluster::EtcdConfig;

namespace {

long long nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

int failed(const std::string& what) {
    std::fprintf(stderr, "scale_setup: %s\n", what.c_str());
    return 1;
}

// One admin connection: its own etcd client and its own copy of the keys.
Result<std::unique_ptr<ClusterAdmin>> connect(const EtcdConfig& c) {
    auto client = cluster::etcdClientFor(c);
    if (!client) return propagate(client);
    auto key = cluster::ClusterKey::loadOrCreate(c.clusterKey);
    if (!key) return propagate(key);
    auto signer = cluster::AdminSigningKey::load(c.signingKey);
    if (!signer) return propagate(signer);
    return std::make_unique<ClusterAdmin>(std::move(*client), std::move(*key), std::move(*signer));
}

// The words of each non-blank line of `path`.
Result<std::vector<std::vector<std::string>>> readLines(const std::string& path) {
    std::vector<std::vector<std::string>> out;
    std::ifstream in(path);
    if (!in) return fail("cannot read " + path);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::vector<std::string> w;
        for (std::string s; words >> s;) w.push_back(s);
        if (!w.empty()) out.push_back(std::move(w));
    }
    return out;
}

// Runs op(admin, i) for i in [0, count) on `threads` connections; prints
// each op's time. The first failure stops every thread and is returned.
template <typename Op>
int parallel(const EtcdConfig& c, const char* kind, std::size_t count, int threads, Op op) {
    std::atomic<std::size_t> next{0};
    std::mutex m;
    std::string error;
    std::vector<long long> times(count);
    const long long t0 = nowNs();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            auto admin = connect(c);
            Result<void> ok = admin ? Result<void>{} : propagate(admin);
            for (std::size_t i = next++; ok && i < count; i = next++) {
                const long long a = nowNs();
                ok = op(**admin, i);
                times[i] = nowNs() - a;
            }
            if (!ok) {
                std::lock_guard l(m);
                if (error.empty()) error = ok.error().message;
                next = count;
            }
        });
    for (auto& t : pool) t.join();
    if (!error.empty()) return failed(std::string(kind) + ": " + error);
    const long long wall = nowNs() - t0;
    for (const long long t : times) std::printf("op %s %lld\n", kind, t);
    std::printf("total %s %zu %lld\n", kind, count, wall);
    return 0;
}

int secrets(const EtcdConfig& c, int threads, std::size_t size, const std::string& file) {
    const auto names = readLines(file);
    if (!names) return failed(names.error().message);
    // The cluster key is made by the first create: once here, before the
    // threads each load it.
    if (auto key = cluster::ClusterKey::loadOrCreate(c.clusterKey); !key) return failed(key.error().message);
    return parallel(c, "secrets", names->size(), threads, [&](ClusterAdmin& admin, std::size_t i) -> Result<void> {
        auto value = SecureBuffer::allocate(size);
        if (!value) return propagate(value);
        if (RAND_bytes(value->data(), static_cast<int>(size)) != 1) return fail("RAND_bytes failed");
        auto id = admin.createSecret((*names)[i][0], *value);
        if (!id) return propagate(id, "secret " + (*names)[i][0]);
        return {};
    });
}

int nodes(const EtcdConfig& c, int threads, const std::string& file) {
    const auto lines = readLines(file);
    if (!lines) return failed(lines.error().message);
    return parallel(c, "nodes", lines->size(), threads, [&](ClusterAdmin& admin, std::size_t i) -> Result<void> {
        const auto& w = (*lines)[i];
        auto pair = w.size() > 1 ? cluster::NodeKeyPair::loadOrCreate(w[1], std::string(cluster::kNodeKeyPairFile))
                                 : cluster::NodeKeyPair::generate();
        if (!pair) return propagate(pair, "node " + w[0]);
        if (auto ok = admin.addNode(w[0], pair->publicKey()); !ok) return propagate(ok, "node " + w[0]);
        return {};
    });
}

int assign(const EtcdConfig& c, const std::string& file) {
    const auto lines = readLines(file);
    if (!lines) return failed(lines.error().message);
    auto identity = cluster::parseBinding("root");
    if (!identity) return failed(identity.error().message);
    return parallel(c, "assign", lines->size(), 1, [&](ClusterAdmin& admin, std::size_t i) -> Result<void> {
        const auto& w = (*lines)[i];
        if (w.size() < 3) return fail(file + ": expected NODE TASK SECRET... on line " + std::to_string(i + 1));
        cluster::TaskAssignment t;
        t.task = w[1];
        for (std::size_t k = 2; k < w.size(); ++k) t.secrets += (k > 2 ? ";" : "") + w[k];
        t.identity = *identity;
        if (auto ok = admin.assignTask(w[0], t); !ok) return propagate(ok, "task " + t.task);
        return {};
    });
}

}  // namespace

int main(int argc, char** argv) {
    const std::string usage =
        "usage: scale_setup CONFIG secrets THREADS SIZE FILE | nodes THREADS FILE | assign FILE";
    if (argc < 4) return failed(usage);
    auto config = loadAgentConfig(argv[1]);
    if (!config) return failed(config.error().message);
    const std::string cmd = argv[2];
    if (cmd == "secrets" && argc == 6) {
        const std::size_t size = std::strtoul(argv[4], nullptr, 10);
        if (size == 0 || size > 65536) return failed("0 < SIZE <= 65536");
        return secrets(config->etcd, std::max(1, std::atoi(argv[3])), size, argv[5]);
    }
    if (cmd == "nodes" && argc == 5) return nodes(config->etcd, std::max(1, std::atoi(argv[3])), argv[4]);
    if (cmd == "assign" && argc == 4) return assign(config->etcd, argv[3]);
    return failed(usage);
}
