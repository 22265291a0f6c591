// The agent's configuration: a YAML file, with command-line flags that
// override its main keys. Unknown keys and bad values are refused with the
// file, line and key.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/protocol/messages.hpp"

namespace YAML {
class Node;
}

namespace secretshim::plugin {

// The `etcd:` block (source: etcd; secretshimctl's cluster commands read
// the same block). Paths are absolute.
struct EtcdConfig {
    std::vector<std::string> endpoints;  // https://HOST:PORT
    std::string ca, cert, key;
    std::string user;
    std::string passwordFile;
    std::string node;        // this node's name (the agent)
    std::string clusterKey;  // the admins' cluster key (secretshimctl)
    std::string signingKey;  // the admin's Ed25519 private key (secretshimctl)
    // The admin public keys whose signatures a node accepts (required with
    // source: etcd; the admin CLI also trusts them for node registrations).
    std::vector<std::string> adminKeys;
};

struct AgentConfig {
    std::string socket{kDefaultSocket};
    std::string stateDir = "/var/lib/secretshim";
    // Records of running tasks (names only) go to <runtimeDir>/tasks, a
    // tmpfs; empty means the socket's directory (/run/secretshim).
    std::string runtimeDir;
    std::size_t maxPayload = mountfs::kDefaultMaxPayload;
    // What one container, and all running ones together, may hold in
    // plaintext: checked before anything of a new container's is decrypted.
    // The node's default leaves the packaged unit's MemoryMax=512M room for
    // the agent itself.
    std::size_t maxContainerBytes = std::size_t{64} << 20;
    std::size_t maxContainerFiles = mountfs::kMaxRefs;
    std::size_t maxNodeBytes = std::size_t{256} << 20;
    // Whether the agent may run on a kernel whose tmpfs cannot refuse swap
    // (noswap, 6.4): the views' pages, plaintext, could then be written to
    // a swap device. Off: such a kernel stops the agent at start.
    bool allowSwap = false;
    std::string source = "local";  // "local" (the embedded store) or "etcd"
    bool hasEtcd = false;
    EtcdConfig etcd;
};

// The `etcd:` block (plugin/agent/etcd_config.cpp).
Result<EtcdConfig> parseEtcdBlock(const std::string& name, const YAML::Node& block);
// The agent's start on a kernel whose tmpfs has no noswap: refused unless
// the config allows swap.
Result<void> checkSwapPolicy(bool kernelHasNoswap, const AgentConfig& config);
// Reads a password file: its first line (refused unless only its owner may
// read it).
Result<std::string> readPasswordFile(const std::string& path);

// Parses YAML text; `name` is the file name used in errors.
Result<AgentConfig> parseAgentConfig(std::string_view yaml, const std::string& name);
Result<AgentConfig> loadAgentConfig(const std::string& path);

}  // namespace secretshim::plugin
