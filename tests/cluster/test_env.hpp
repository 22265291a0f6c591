// What the cluster test programs read from with_cluster.sh's environment
// (ETCD_ENDPOINTS, ETCD_PKI, ...) and from the fixture's files.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace secretshim::cluster_test
