// The agent's configuration: a YAML file, with command-line flags that
// override its main keys. Unknown keys and bad values are refused with the
// file, line and key. secretshimctl's cluster commands read its etcd block
// (--cluster-config): a library of its own, so that the CLI links no agent
// code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/base/log.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/cluster/etcd_config.hpp"
#include "plugin/protocol/messages.hpp"

namespace YAML {
class Node;
}

namespace secretshim::plugin {

// An address to listen on: an IP literal (no host name: nothing to resolve
// at start) and a port, as the admin wrote it in canonical form, so that two
// configs compare equal when they mean the same address.
struct ListenAddress {
    std::string host;  // inet_ntop's spelling: "127.0.0.1", "::1"
    std::uint16_t port = 0;
    bool ipv6 = false;
    std::string text() const;  // "127.0.0.1:9464", "[::1]:9464"
    bool operator==(const ListenAddress&) const = default;
};
// "HOST:PORT" with an IPv4 literal, or "[HOST]:PORT" with an IPv6 one; the
// port from 1 to 65535.
Result<ListenAddress> parseListenAddress(std::string_view text);
// Where the agent's log goes (log_target): native journal entries, plain
// lines on stderr, or "auto", the journal when systemd connected stderr to
// it (plugin/agent/journal_log.hpp).
enum class LogTarget { automatic, journal, standardError };

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
    // Where the agent serves its metrics (GET /metrics, Prometheus' text
    // format), or none: off by default. Bound at start only.
    std::optional<ListenAddress> metricsListen;
    // A file for node_exporter's textfile collector (absolute, ending in
    // .prom), or empty: off by default. Opened at start only.
    std::string metricsTextfile;
    LogTarget logTarget = LogTarget::automatic;
    LogLevel logLevel = LogLevel::info;  // lines below it are not logged
    std::string source = "local";  // "local" (the embedded store) or "etcd"
    bool hasEtcd = false;
    cluster::EtcdConfig etcd;  // the `etcd:` block
};

// A reload (SIGHUP): the running configuration with what may change live
// taken from the file read again (the plaintext limits, log_level), and the
// names of the keys whose change needs a restart (the socket, the
// directories, the source and its etcd block, max_payload, allow_swap,
// log_target, the metrics listener and textfile), which keep their running
// values.
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
