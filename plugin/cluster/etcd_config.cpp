#include "plugin/cluster/etcd_config.hpp"

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
    return EtcdClient::create(std::move(s));
}

}  // namespace secretshim::cluster
