#include "plugin/cluster/etcd_config.hpp"

#include <fstream>

#include "plugin/store/private_path.hpp"

namespace secretshim::cluster {

Result<std::unique_ptr<EtcdClient>> etcdClientFor(const EtcdConfig& c) {
    EtcdSettings s;
    s.endpoints = c.endpoints;
    s.caFile = c.ca;
    s.certFile = c.cert;
    s.keyFile = c.key;
    if (!c.key.empty())
        if (auto ok = plugin::checkPrivateFile(c.key, "etcd: the client key " + quote(c.key)); !ok)
            return propagate(ok);
    s.user = c.user;
    if (!c.passwordFile.empty()) {
        auto password = readPasswordFile(c.passwordFile);
        if (!password) return propagate(password);
        s.password = *password;
    }
    return EtcdClient::create(std::move(s));
}

Result<std::string> readPasswordFile(const std::string& path) {
    if (auto ok = plugin::checkPrivateFile(path, "the etcd password file " + path); !ok)
        return propagate(ok);
    std::ifstream in(path);
    if (!in) return failErrno("cannot read the etcd password file " + path);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) return fail("the etcd password file " + path + " is empty");
    return line;
}

}  // namespace secretshim::cluster
