// The `etcd:` block of the agent's configuration (source: etcd), also read by
// secretshimctl's cluster commands:
//
//   etcd:
//     endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
//     ca: /etc/secretshim/etcd/ca.crt
//     cert: /etc/secretshim/etcd/node.crt     # CN=node-1: etcd's user
//     key: /etc/secretshim/etcd/node.key
//     node: node-1
//     admin_keys: [/etc/secretshim/admin-signing.pub]  # whose signatures count
//     cluster_key: /root/.secretshim/cluster.key   # admins only
//     signing_key: /root/.secretshim/admin-signing.key   # admins only
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "plugin/config/agent_config.hpp"

namespace secretshim::plugin {

using cluster::EtcdConfig;

namespace {

std::string where(const std::string& name, const YAML::Node& node) {
    return name + ":" + std::to_string(node.Mark().line + 1);
}

Result<std::string> pathValue(const std::string& name, const std::string& key, const YAML::Node& value) {
    if (!value.IsScalar() || value.Scalar().empty() || value.Scalar().front() != '/' ||
        value.Scalar().find('\0') != std::string::npos)
        return fail(where(name, value) + ": key \"etcd." + key + "\": expected an absolute path");
    return value.Scalar();
}

Result<std::string> textValue(const std::string& name, const std::string& key, const YAML::Node& value) {
    if (!value.IsScalar() || value.Scalar().empty() || value.Scalar().size() > 256 ||
        value.Scalar().find_first_of(std::string("\n\r\0", 3)) != std::string::npos)
        return fail(where(name, value) + ": key \"etcd." + key + "\": expected a name on one line");
    return value.Scalar();
}

Result<std::string> endpointValue(const std::string& name, const YAML::Node& value) {
    // A URL is printable ASCII: nothing else can name a host and port.
    const bool printable = value.IsScalar() && std::all_of(value.Scalar().begin(), value.Scalar().end(), [](char ch) {
        return static_cast<unsigned char>(ch) > 0x20 && static_cast<unsigned char>(ch) < 0x7f;
    });
    if (!printable || value.Scalar().rfind("https://", 0) != 0 || value.Scalar().size() > 256)
        return fail(where(name, value) + ": key \"etcd.endpoints\": expected https://HOST:PORT (TLS only)");
    return value.Scalar();
}

}  // namespace

Result<EtcdConfig> parseEtcdBlock(const std::string& name, const YAML::Node& block) {
    if (!block.IsMap()) return fail(where(name, block) + ": key \"etcd\": expected a mapping of keys");
    EtcdConfig c;
    std::vector<std::string> seen;
    for (const auto& item : block) {
        const std::string key = item.first.IsScalar() ? item.first.Scalar() : "";
        const YAML::Node& value = item.second;
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            return fail(where(name, item.first) + ": duplicate key " + quote("etcd." + key));
        seen.push_back(key);
        Result<std::string> v = std::string();
        if (key == "endpoints") {
            const bool list = value.IsSequence() && value.size() > 0 && value.size() <= 16;
            if (!list) return fail(where(name, value) + ": key \"etcd.endpoints\": expected a list of 1 to 16 https:// URLs");
            for (const auto& e : value) {
                auto url = endpointValue(name, e);
                if (!url) return propagate(url);
                c.endpoints.push_back(*url);
            }
            continue;
        }
        if (key == "admin_keys") {
            const bool list = value.IsSequence() && value.size() > 0 && value.size() <= 16;
            if (!list) return fail(where(name, value) + ": key \"etcd.admin_keys\": expected a list of 1 to 16 paths");
            for (const auto& p : value) {
                auto path = pathValue(name, key, p);
                if (!path) return propagate(path);
                c.adminKeys.push_back(*path);
            }
            continue;
        }
        if (key == "ca") v = pathValue(name, key, value), c.ca = v.value_or("");
        else if (key == "cert") v = pathValue(name, key, value), c.cert = v.value_or("");
        else if (key == "key") v = pathValue(name, key, value), c.key = v.value_or("");
        else if (key == "cluster_key") v = pathValue(name, key, value), c.clusterKey = v.value_or("");
        else if (key == "signing_key") v = pathValue(name, key, value), c.signingKey = v.value_or("");
        else if (key == "user" || key == "password_file")
            return fail(where(name, item.first) + ": key " + quote("etcd." + key) +
                        " is not used: etcd takes the user from the client certificate's CN");
        else if (key == "node") v = textValue(name, key, value), c.node = v.value_or("");
        else return fail(where(name, item.first) + ": unknown key " + quote("etcd." + key));
        if (!v) return propagate(v);
    }
    if (c.endpoints.empty() || c.ca.empty() || c.cert.empty() || c.key.empty())
        return fail(where(name, block) + ": key \"etcd\": endpoints, ca, cert and key are required");
    return c;
}

}  // namespace secretshim::plugin
