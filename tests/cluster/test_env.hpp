// What the cluster test programs read from with_cluster.sh's environment
// (ETCD_ENDPOINTS, ETCD_PKI, ...) and from the fixture's files.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>

#include "plugin/cluster/etcd_client.hpp"

namespace secretshim::cluster_test {

inline std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// A file's text without its trailing newlines (a password file, a key).
inline std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

// A client of the cluster as its root user (admin.crt: CN=root).
inline Result<std::unique_ptr<cluster::EtcdClient>> rootClient() {
    const std::string pki = env("ETCD_PKI");
    cluster::EtcdSettings s;
    std::stringstream in(env("ETCD_ENDPOINTS"));
    for (std::string e; std::getline(in, e, ',');) s.endpoints.push_back(e);
    s.caFile = pki + "/ca.crt";
    s.certFile = pki + "/admin.crt";
    s.keyFile = pki + "/admin.key";
    return cluster::EtcdClient::create(std::move(s));
}

// The admin race tests' keys (made by the first test case that needs them).
inline std::string raceClusterKeyPath() { return env("ETCD_DIR") + "/race-cluster.key"; }
inline std::string raceSigningKeyPath() { return env("ETCD_DIR") + "/race-signing.key"; }

}  // namespace secretshim::cluster_test
