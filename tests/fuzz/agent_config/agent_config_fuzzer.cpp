// Fuzzes the agent's YAML configuration loader (plugin/config). It
// must refuse, never throw: the agent calls it at start before any handler
// could catch an exception.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "plugin/config/agent_config.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

const std::string kName = "agent.yaml";

bool isPath(const std::string& p) {
    // A NUL would silently cut the path short in every system call.
    return !p.empty() && p.front() == '/' && p.find('\0') == std::string::npos;
}

// YAML is UTF-8, and yaml-cpp's emitter writes the noncharacters U+FFFE and
// U+FFFF as U+FFFD: a path holding either is taken as it is, but cannot be
// written back unchanged.
bool emitterKeeps(const std::string& s) {
    return fuzz::isUtf8(s) && s.find("\xEF\xBF\xBE") == std::string::npos &&
           s.find("\xEF\xBF\xBF") == std::string::npos;
}

// The file an operator would write for this configuration.
std::string format(const AgentConfig& c) {
    YAML::Emitter out;
    out << YAML::BeginMap;
    out << YAML::Key << "socket" << YAML::Value << YAML::DoubleQuoted << c.socket;
    out << YAML::Key << "state_dir" << YAML::Value << YAML::DoubleQuoted << c.stateDir;
    out << YAML::Key << "max_payload" << YAML::Value << c.maxPayload;
    out << YAML::Key << "source" << YAML::Value << c.source;
    if (c.hasEtcd) {
        out << YAML::Key << "etcd" << YAML::Value << YAML::BeginMap;
        out << YAML::Key << "endpoints" << YAML::Value << YAML::BeginSeq;
        for (const auto& e : c.etcd.endpoints) out << YAML::DoubleQuoted << e;
        out << YAML::EndSeq;
        const std::pair<const char*, const std::string*> fields[] = {
            {"ca", &c.etcd.ca}, {"cert", &c.etcd.cert}, {"key", &c.etcd.key},
            {"node", &c.etcd.node}, {"cluster_key", &c.etcd.clusterKey},
            {"signing_key", &c.etcd.signingKey}};
        for (const auto& [key, value] : fields)
            if (!value->empty()) out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << *value;
        if (!c.etcd.adminKeys.empty()) {
            out << YAML::Key << "admin_keys" << YAML::Value << YAML::BeginSeq;
            for (const auto& k : c.etcd.adminKeys) out << YAML::DoubleQuoted << k;
            out << YAML::EndSeq;
        }
        out << YAML::EndMap;
    }
    out << YAML::EndMap;
    return out.c_str();
}

void checkError(const Error& error) {
    FUZZ_CHECK_MSG(fuzz::isOneLine(error.message), error.message);
    FUZZ_CHECK(error.code == 0);
    // "agent.yaml:LINE: what": the file and line come first.
    const std::string_view m = error.message;
    FUZZ_CHECK_MSG(m.rfind(kName + ":", 0) == 0, m);
    const std::size_t digits = m.find_first_not_of("0123456789", kName.size() + 1);
    FUZZ_CHECK_MSG(digits != std::string_view::npos && digits > kName.size() + 1 && m.substr(digits, 2) == ": ", m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    Result<AgentConfig> config = fail("not parsed");
    try {
        config = parseAgentConfig(input, kName);
    } catch (const std::exception& e) {
        FUZZ_CHECK_MSG(false, std::string("exception escaped: ") + e.what());
    }
    if (!config) {
        checkError(config.error());
        return 0;
    }
    FUZZ_CHECK_MSG(isPath(config->socket), config->socket);
    FUZZ_CHECK_MSG(isPath(config->stateDir), config->stateDir);
    FUZZ_CHECK(config->maxPayload >= 1 && config->maxPayload <= 64 * 1024 * 1024);
    FUZZ_CHECK(config->source == "local" || (config->source == "etcd" && config->hasEtcd));
    if (config->hasEtcd) {
        const cluster::EtcdConfig& e = config->etcd;
        FUZZ_CHECK(!e.endpoints.empty() && isPath(e.ca) && isPath(e.cert) && isPath(e.key));
        for (const auto& url : e.endpoints) FUZZ_CHECK_MSG(url.rfind("https://", 0) == 0, url);
        for (const auto& url : e.endpoints) FUZZ_CHECK_MSG(fuzz::isUtf8(url), url);
        for (const std::string* s : {&e.ca, &e.cert, &e.key, &e.node, &e.clusterKey,
                                     &e.signingKey})
            if (!emitterKeeps(*s)) return 0;
        for (const auto& k : e.adminKeys) {
            FUZZ_CHECK_MSG(isPath(k), k);
            if (!emitterKeeps(k)) return 0;
        }
        FUZZ_CHECK(config->source != "etcd" || !e.adminKeys.empty());
    }

    if (!emitterKeeps(config->socket) || !emitterKeeps(config->stateDir)) return 0;
    const std::string again = format(*config);
    Result<AgentConfig> reparsed = fail("not parsed");
    try {
        reparsed = parseAgentConfig(again, kName);
    } catch (const std::exception& e) {
        FUZZ_CHECK_MSG(false, std::string("exception escaped on re-reading: ") + e.what());
    }
    FUZZ_CHECK_MSG(reparsed.has_value(), reparsed ? again : reparsed.error().message);
    FUZZ_CHECK(reparsed->socket == config->socket && reparsed->stateDir == config->stateDir &&
               reparsed->maxPayload == config->maxPayload && reparsed->source == config->source);
    FUZZ_CHECK(reparsed->hasEtcd == config->hasEtcd && reparsed->etcd.endpoints == config->etcd.endpoints &&
               reparsed->etcd.ca == config->etcd.ca && reparsed->etcd.cert == config->etcd.cert &&
               reparsed->etcd.key == config->etcd.key &&
               reparsed->etcd.node == config->etcd.node &&
               reparsed->etcd.clusterKey == config->etcd.clusterKey &&
               reparsed->etcd.signingKey == config->etcd.signingKey &&
               reparsed->etcd.adminKeys == config->etcd.adminKeys);
    return 0;
}
