// An admin killed in the middle of a rotation (admin_race_test.cpp): runs
// `secret rotate` through ClusterAdmin with the race tests' keys, and
// SIGKILLs itself just before its KILL_AT-th transaction (1: the claim,
// then the copies' batches, the switch, the old copies' batches), so that
// everything sent before stays and nothing after is sent.
//
// usage: rotate_killed NAME VALUE BATCH_OPS KILL_AT   (with_cluster.sh's environment)
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "plugin/cluster/cluster_admin.hpp"
#include "tests/cluster/test_env.hpp"

using namespace secretshim;
using namespace secretshim::cluster;

int main(int argc, char** argv) {
    if (argc != 5) return std::fprintf(stderr, "usage: rotate_killed NAME VALUE BATCH_OPS KILL_AT\n"), 2;
    const std::string name = argv[1], text = argv[2];
    const int killAt = std::atoi(argv[4]);
    auto client = cluster_test::rootClient();
    auto key = ClusterKey::loadOrCreate(cluster_test::raceClusterKeyPath());
    auto signer = AdminSigningKey::load(cluster_test::raceSigningKeyPath());
    auto value = SecureBuffer::allocate(text.size());
    if (!client || !key || !signer || !value) return std::fprintf(stderr, "rotate_killed: set-up failed\n"), 1;
    std::copy(text.begin(), text.end(), value->data());
    ClusterAdmin admin(std::move(*client), std::move(*key), std::move(*signer));
    admin.setBatchLimits(std::strtoul(argv[3], nullptr, 10), 1 << 20);
    int commits = 0;
    admin.setBeforeCommit([&] {
        if (++commits == killAt) std::raise(SIGKILL);
    });
    auto version = admin.rotateSecret(name, *value);
    if (!version) return std::fprintf(stderr, "rotate_killed: %s\n", version.error().message.c_str()), 1;
    std::printf("%llu\n", static_cast<unsigned long long>(*version));
    return 0;
}
