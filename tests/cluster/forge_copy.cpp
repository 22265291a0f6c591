// The attacker of the signed-records tests (cluster_e2e.sh): whoever can
// write to etcd and has the project's code. Prints a per-node copy of a
// secret that decrypts on the node (sealed to its public key, which is no
// secret) but is signed by the attacker's own Ed25519 key, or not at all.
//
// usage: forge_copy NODE PUBLIC_KEY_BASE64 NAME ID VERSION VALUE_FILE [SIGNING_KEY_PEM]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "plugin/cluster/base64.hpp"
#include "plugin/cluster/envelope.hpp"
#include "plugin/cluster/signing.hpp"

using namespace secretshim::cluster;

int main(int argc, char** argv) {
    if (argc != 7 && argc != 8) {
        std::fprintf(stderr, "usage: forge_copy NODE PUBLIC_KEY NAME ID VERSION VALUE_FILE [SIGNING_KEY]\n");
        return 2;
    }
    const std::string node = argv[1], name = argv[3], id = argv[4];
    const auto version = std::strtoull(argv[5], nullptr, 10);
    auto pub = base64Decode(argv[2]);
    std::ifstream in(argv[6], std::ios::binary);
    const std::string value((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!pub || !in) return std::fprintf(stderr, "forge_copy: bad public key or value file\n"), 2;
    auto sealed = sealForNode({reinterpret_cast<const unsigned char*>(pub->data()), pub->size()},
                              {reinterpret_cast<const unsigned char*>(value.data()), value.size()},
                              {node, name, id, version});
    if (!sealed) return std::fprintf(stderr, "forge_copy: %s\n", sealed.error().message.c_str()), 1;
    NodeSecret copy{name, id, version, *sealed, {}};
    if (argc == 8) {
        auto key = AdminSigningKey::load(argv[7]);
        if (!key) return std::fprintf(stderr, "forge_copy: %s\n", key.error().message.c_str()), 1;
        if (!key->sign(nodeSecretKey(node, name, version), copy, nextSerial(0))) return 1;
    }
    std::printf("%s", encodeNodeSecret(copy).c_str());
    return 0;
}
