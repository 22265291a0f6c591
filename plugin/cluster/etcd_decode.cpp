#include "plugin/cluster/etcd_decode.hpp"

#include "etcd.pb.h"

namespace secretshim::cluster {

namespace pb = etcdserverpb;

namespace {

KeyValue decodeKv(const pb::KeyValue& kv) {
    return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version()};
}

}  // namespace

RangeResult decodeRange(const pb::RangeResponse& response) {
    RangeResult out;
    out.revision = response.header().revision();
    out.more = response.more();
    out.count = response.count();
    out.kvs.reserve(static_cast<std::size_t>(response.kvs_size()));
    for (const auto& kv : response.kvs()) out.kvs.push_back(decodeKv(kv));
    return out;
}

WatchMessage decodeWatch(const pb::WatchResponse& response) {
    WatchMessage m;
    m.revision = response.header().revision();
    m.watchId = std::to_string(response.watch_id());
    m.created = response.created();
    m.canceled = response.canceled();
    m.compactRevision = response.compact_revision();
    m.cancelReason = response.cancel_reason().substr(0, 200);
    for (const auto& e : response.events()) {
        if (e.type() != pb::Event::PUT && e.type() != pb::Event::DELETE) {
            m.skipped.push_back("an event has an unknown type (" + std::to_string(e.type()) + ")");
            continue;
        }
        if (e.kv().key().empty()) {
            m.skipped.push_back("an event has no key");
            continue;
        }
        m.events.push_back(
            {e.type() == pb::Event::PUT ? WatchEvent::Type::put : WatchEvent::Type::remove, decodeKv(e.kv())});
    }
    return m;
}

}  // namespace secretshim::cluster
