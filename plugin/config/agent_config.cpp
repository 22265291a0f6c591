#include "plugin/config/agent_config.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

namespace secretshim::plugin {
namespace {

constexpr std::size_t kPayloadCeiling = 64 * 1024 * 1024;  // a view must stay small
constexpr std::size_t kHeldCeiling = std::size_t{64} << 30;   // plaintext held in memory: 64 GiB

std::string where(const std::string& name, const YAML::Node& node) {
    return name + ":" + std::to_string(node.Mark().line + 1);
}

Result<std::string> absolutePath(const std::string& name, const std::string& key, const YAML::Node& value) {
    if (!value.IsScalar() || value.Scalar().empty() || value.Scalar().front() != '/' ||
        value.Scalar().find('\0') != std::string::npos)
        return fail(where(name, value) + ": key \"" + key + "\": expected an absolute path");
    return value.Scalar();
}

}  // namespace

std::string ListenAddress::text() const {
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ListenAddress> parseListenAddress(std::string_view text) {
    const auto refused = [&] {
        return fail("expected HOST:PORT with an IP address and a port from 1 to 65535 (127.0.0.1:9464, [::1]:9464), "
                    "not " + quote(text));
    };
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return refused();
    std::string host(text.substr(0, colon));
    const std::string_view port = text.substr(colon + 1);
    ListenAddress address;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        address.ipv6 = true;
    }
    unsigned char raw[sizeof(in6_addr)];
    char canonical[INET6_ADDRSTRLEN];
    const int family = address.ipv6 ? AF_INET6 : AF_INET;
    if (host.find('\0') != std::string::npos || ::inet_pton(family, host.c_str(), raw) != 1 ||
        !::inet_ntop(family, raw, canonical, sizeof canonical))
        return refused();
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
        return refused();
    const unsigned long n = std::stoul(std::string(port));
    if (n == 0 || n > 65535) return refused();
    address.host = canonical;
    address.port = static_cast<std::uint16_t>(n);
    return address;
}

Result<AgentConfig> parseAgentConfig(std::string_view yaml, const std::string& name) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        // yaml-cpp's message may quote the offending byte: keep it one line.
        std::string msg = quote(e.msg);
        return fail(name + ":" + std::to_string(e.mark.line + 1) + ": " + msg.substr(1, msg.size() - 2));
    }
    AgentConfig config;
    if (root.IsNull()) return config;
    if (!root.IsMap()) return fail(where(name, root) + ": expected a mapping of keys");
    std::vector<std::string> seen;
    for (const auto& item : root) {
        const YAML::Node& keyNode = item.first;
        const YAML::Node& value = item.second;
        const std::string key = keyNode.IsScalar() ? keyNode.Scalar() : "";
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            return fail(where(name, keyNode) + ": duplicate key " + quote(key));
        seen.push_back(key);
        if (key == "socket") {
            auto p = absolutePath(name, key, value);
            if (!p) return propagate(p);
            config.socket = *p;
        } else if (key == "state_dir") {
            auto p = absolutePath(name, key, value);
            if (!p) return propagate(p);
            config.stateDir = *p;
        } else if (key == "runtime_dir") {
            auto p = absolutePath(name, key, value);
            if (!p) return propagate(p);
            config.runtimeDir = *p;
        } else if (key == "max_payload" || key == "max_container_bytes" || key == "max_container_files" ||
                   key == "max_node_bytes") {
            const bool files = key == "max_container_files";
            const std::size_t ceiling = key == "max_payload" ? kPayloadCeiling
                                        : files              ? mountfs::kMaxRefs
                                                             : kHeldCeiling;
            std::size_t n = 0;
            const std::string& s = value.IsScalar() ? value.Scalar() : std::string();
            bool ok = !s.empty() && s.size() < 15 && s.find_first_not_of("0123456789") == std::string::npos;
            if (ok) n = std::stoull(s);
            if (!ok || n == 0 || n > ceiling)
                return fail(where(name, value) + ": key " + quote(key) + ": expected " + (files ? "files" : "bytes") +
                            " from 1 to " + std::to_string(ceiling));
            (key == "max_payload"           ? config.maxPayload
             : key == "max_container_bytes" ? config.maxContainerBytes
             : files                        ? config.maxContainerFiles
                                            : config.maxNodeBytes) = n;
        } else if (key == "allow_swap") {
            if (!value.IsScalar() || (value.Scalar() != "true" && value.Scalar() != "false"))
                return fail(where(name, value) + ": key \"allow_swap\": expected true or false");
            config.allowSwap = value.Scalar() == "true";
        } else if (key == "metrics_listen") {
            auto address = value.IsScalar() ? parseListenAddress(value.Scalar()) : fail("expected HOST:PORT");
            if (!address) return fail(where(name, value) + ": key \"metrics_listen\": " + address.error().message);
            config.metricsListen = std::move(*address);
        } else if (key == "metrics_textfile") {
            auto p = absolutePath(name, key, value);
            if (!p) return propagate(p);
            if (p->size() <= 6 || p->compare(p->size() - 5, 5, ".prom") != 0 || p->back() == '/' ||
                (*p)[p->size() - 6] == '/')
                return fail(where(name, value) + ": key \"metrics_textfile\": expected a file name ending in .prom "
                            "(node_exporter's textfile collector reads only those)");
            config.metricsTextfile = *p;
        } else if (key == "log_target") {
            const std::string& t = value.IsScalar() ? value.Scalar() : std::string();
            if (t != "auto" && t != "journal" && t != "stderr")
                return fail(where(name, value) + ": key \"log_target\": expected \"auto\", \"journal\" or \"stderr\"");
            config.logTarget = t == "auto" ? LogTarget::automatic : t == "journal" ? LogTarget::journal
                                                                                   : LogTarget::standardError;
        } else if (key == "log_level") {
            const auto level = value.IsScalar() ? parseLogLevel(value.Scalar()) : std::nullopt;
            if (!level)
                return fail(where(name, value) + ": key \"log_level\": expected err, warning, notice, info or debug");
            config.logLevel = *level;
        } else if (key == "source") {
            if (!value.IsScalar() || (value.Scalar() != "local" && value.Scalar() != "etcd"))
                return fail(where(name, value) + ": key \"source\": expected \"local\" or \"etcd\"");
            config.source = value.Scalar();
        } else if (key == "etcd") {
            auto etcd = parseEtcdBlock(name, value);
            if (!etcd) return propagate(etcd);
            config.etcd = std::move(*etcd);
            config.hasEtcd = true;
        } else {
            return fail(where(name, keyNode) + ": unknown key " + quote(key));
        }
    }
    if (config.source == "etcd" && (!config.hasEtcd || config.etcd.node.empty()))
        return fail(where(name, root) + ": source \"etcd\" needs an etcd block with endpoints, ca, cert, key and node");
    // A node acts only on records an admin signed: without a key to check
    // them against, it would have to trust whoever can write to etcd.
    if (config.source == "etcd" && config.etcd.adminKeys.empty())
        return fail(where(name, root) + ": source \"etcd\" needs etcd.admin_keys: the admin public key(s) that sign "
                    "the cluster's records (docs/cluster.md)");
    return config;
}

Result<void> checkSwapPolicy(bool kernelHasNoswap, const AgentConfig& config) {
    if (kernelHasNoswap || config.allowSwap) return {};
    return fail("this kernel's tmpfs cannot keep secrets out of swap (noswap needs Linux 6.4): use a newer kernel, "
                "or run without swap and set allow_swap: true");
}

Reload reloadConfig(const AgentConfig& running, const AgentConfig& next) {
    Reload r{running, {}, {}};
    const auto live = [&](const char* key, std::size_t AgentConfig::*field) {
        if (running.*field == next.*field) return;
        r.config.*field = next.*field;
        r.changed.emplace_back(key);
    };
    live("max_container_bytes", &AgentConfig::maxContainerBytes);
    live("max_container_files", &AgentConfig::maxContainerFiles);
    live("max_node_bytes", &AgentConfig::maxNodeBytes);
    if (running.logLevel != next.logLevel) {
        r.config.logLevel = next.logLevel;
        r.changed.emplace_back("log_level");
    }
    const auto fixed = [&](const char* key, bool same) {
        if (!same) r.kept.emplace_back(key);
    };
    fixed("socket", running.socket == next.socket);
    fixed("state_dir", running.stateDir == next.stateDir);
    fixed("runtime_dir", running.runtimeDir == next.runtimeDir);
    fixed("max_payload", running.maxPayload == next.maxPayload);
    fixed("allow_swap", running.allowSwap == next.allowSwap);
    fixed("source", running.source == next.source);
    fixed("etcd", running.hasEtcd == next.hasEtcd && running.etcd == next.etcd);
    fixed("metrics_listen", running.metricsListen == next.metricsListen);
    fixed("metrics_textfile", running.metricsTextfile == next.metricsTextfile);
    fixed("log_target", running.logTarget == next.logTarget);
    return r;
}

Result<AgentConfig> loadAgentConfig(const std::string& path) {
    // A directory opens fine and reads as nothing: refuse it, or a wrong
    // --config would silently mean the defaults.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return failErrno(S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "cannot read config " + path);  // what a read would say
    std::ifstream in(path);
    if (!in) return failErrno("cannot read config " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return parseAgentConfig(text.str(), path);
}

}  // namespace secretshim::plugin
