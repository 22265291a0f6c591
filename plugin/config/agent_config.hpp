// The agent's configuration: a YAML file, with command-line flags that
// override its main keys. Unknown keys and bad values are refused with the
// file, line and key. secretshimctl's cluster commands read its etcd block
// (--cluster-config): a library of its own, so that the CLI links no agent
// code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/cluster/etcd_config.hpp"
#include "plugin/protocol/messages.hpp"

namespace YAML {
class Node;
}

namespace secretshim::plugin {

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
    cluster::EtcdConfig etcd;  // the `etcd:` block
};

// A reload (SIGHUP): the running configuration with what may change live
// taken from the file read again (the plaintext limits), and the names of
// the keys whose change needs a restart (the socket, the directories, the
// source and its etcd block, max_payload, allow_swap), which keep their
// running values.
struct Reload {
    AgentConfig config;
    std::vector<std::string> changed;  // live keys whose value changed
    std::vector<std::string> kept;     // keys that changed but cannot change live
};
Reload reloadConfig(const AgentConfig& running, const AgentConfig& next);

// The `etcd:` block (plugin/config/etcd_block.cpp).
Result<cluster::EtcdConfig> parseEtcdBlock(const std::string& name, const YAML::Node& block);
// The agent's start on a kernel whose tmpfs has no noswap: refused unless
// the config allows swap.
Result<void> checkSwapPolicy(bool kernelHasNoswap, const AgentConfig& config);

// Parses YAML text; `name` is the file name used in errors.
Result<AgentConfig> parseAgentConfig(std::string_view yaml, const std::string& name);
Result<AgentConfig> loadAgentConfig(const std::string& path);

}  // namespace secretshim::plugin
