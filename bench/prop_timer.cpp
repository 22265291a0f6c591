// Update propagation timer (bench row 6): rotates one cluster secret the
// way `secretshimctl secret rotate` does (ClusterAdmin::rotateSecret, the
// same transaction, in-process so its acknowledgement can be time-stamped),
// then polls the secret's file in running containers (paths through
// /proc/PID/root) until every one shows the new value.
//
//   prop_timer CONFIG SECRET UPDATES SIZE FILE...
//
// CONFIG: an agent-format YAML with an etcd block for the admin (user root,
// cluster_key, signing_key). Per update it prints one line of CLOCK_MONOTONIC times in
// ns (the clock of Python's time.monotonic and of the agent's trace):
//   commit_start commit_ack rotate_start rotate_ack first_visible last_visible
// commit_*: a put of a scratch key outside every node prefix (etcd's own
// commit latency, nobody watches it); rotate_*: the admin's rotation from
// its first read to the switch's acknowledgement (claim, copies, switch);
// *_visible: the first and the last FILE that showed the new
// value. Values are random bytes compared in memory, never printed.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "platform/linux/unique_fd.hpp"
#include "plugin/cluster/cluster_admin.hpp"
#include "plugin/cluster/etcd_config.hpp"
#include "plugin/config/agent_config.hpp"
#include "plugin/store/secure_buffer.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using secretshim::cluster::ClusterAdmin;
using secretshim::platform::UniqueFd;

namespace {

long long nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// True when `path` holds exactly `want` (read through a fresh open: the
// agent swaps the file by rename, so an fd kept open would pin the old one).
bool holds(const std::string& path, const SecureBuffer& want, std::vector<unsigned char>& scratch) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = ::read(fd, scratch.data(), scratch.size());
    ::close(fd);
    return n == static_cast<ssize_t>(want.size()) && std::memcmp(scratch.data(), want.data(), want.size()) == 0;
}

int failed(const std::string& what) {
    std::fprintf(stderr, "prop_timer: %s\n", what.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) return failed("usage: prop_timer CONFIG SECRET UPDATES SIZE FILE...");
    const std::string secret = argv[2];
    const int updates = std::atoi(argv[3]);
    const std::size_t size = std::strtoul(argv[4], nullptr, 10);
    const std::vector<std::string> files(argv + 5, argv + argc);
    if (updates <= 0 || size == 0 || size > 65536) return failed("UPDATES > 0 and 0 < SIZE <= 65536");

    auto config = loadAgentConfig(argv[1]);
    if (!config) return failed(config.error().message);
    auto client = cluster::etcdClientFor(config->etcd);
    auto scratchClient = cluster::etcdClientFor(config->etcd);
    if (!client || !scratchClient) return failed((client ? scratchClient : client).error().message);
    auto key = cluster::ClusterKey::load(config->etcd.clusterKey);
    if (!key) return failed(key.error().message);
    auto signer = cluster::AdminSigningKey::load(config->etcd.signingKey);
    if (!signer) return failed(signer.error().message);
    ClusterAdmin admin(std::move(*client), std::move(*key), std::move(*signer));
    // A rotation's last transaction deletes the old version's copies, and
    // starts right after the switch (the new version published) was
    // acknowledged: that start is the rotation's acknowledgement here.
    long long lastCommit = 0;
    admin.setBeforeCommit([&] { lastCommit = nowNs(); });

    std::mt19937 pause(std::random_device{}());
    std::vector<unsigned char> scratch(size + 1);
    std::vector<char> seen(files.size());
    UniqueFd notify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!notify) return failed("inotify_init1 failed");
    for (const auto& f : files)
        if (::inotify_add_watch(notify.get(), f.substr(0, f.rfind('/')).c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
            return failed("cannot watch the directory of " + f);
    std::vector<char> events(64 * 1024);
    for (int u = 0; u < updates; ++u) {
        auto value = SecureBuffer::allocate(size);
        if (!value) return failed(value.error().message);
        std::random_device rd;
        for (auto& b : value->span()) b = static_cast<unsigned char>(rd());

        const long long c0 = nowNs();
        if (auto w = (*scratchClient)->put("/secretshim-bench/commit", std::to_string(u)); !w)
            return failed("scratch put: " + w.error().message);
        const long long c1 = nowNs();

        const long long r0 = nowNs();
        if (auto v = admin.rotateSecret(secret, *value); !v) return failed("rotate: " + v.error().message);
        const long long r1 = lastCommit;

        // Woken by inotify (the agent renames the new file into each
        // container's /run/secrets: IN_MOVED_TO), not by busy polling, which
        // would take a core from the agent on this 2-core machine; every
        // 1 ms all files still old are read anyway. The last one's time is
        // exact to within one pass over those that remain.
        std::fill(seen.begin(), seen.end(), 0);
        std::size_t left = files.size();
        long long first = 0, last = 0;
        while (left > 0) {
            for (std::size_t i = 0; i < files.size(); ++i) {
                if (seen[i] || !holds(files[i], *value, scratch)) continue;
                seen[i] = 1;
                --left;
                last = nowNs();
                if (!first) first = last;
            }
            if (left == 0) break;
            if (nowNs() - r1 > 10'000'000'000LL)
                return failed("update " + std::to_string(u) + ": " + std::to_string(left) + " of " +
                              std::to_string(files.size()) + " files still old after 10 s");
            pollfd p{notify.get(), POLLIN, 0};
            if (::poll(&p, 1, 1) > 0)
                while (::read(notify.get(), events.data(), events.size()) > 0) {
                }
        }
        std::printf("%lld %lld %lld %lld %lld %lld\n", c0, c1, r0, r1, first, last);
        std::fflush(stdout);
        // A random pause: updates do not all land at the same phase of the
        // watch's progress notifications (1 s) or of etcd's heartbeats.
        std::this_thread::sleep_for(std::chrono::microseconds(2000 + pause() % 8000));
    }
    return 0;
}
