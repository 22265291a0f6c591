// etcd's protobuf answers as the agent reads them: ranges, and watch
// messages with events it can and cannot apply.
#include <doctest/doctest.h>

#include "etcd.pb.h"
#include "plugin/cluster/etcd_decode.hpp"

using namespace secretshim::cluster;
namespace pb = etcdserverpb;

namespace {

void addEvent(pb::WatchResponse& r, pb::Event::EventType type, const std::string& key, std::int64_t mod) {
    pb::Event* e = r.add_events();
    e->set_type(type);
    e->mutable_kv()->set_key(key);
    e->mutable_kv()->set_value(std::string("v\0w", 3));
    e->mutable_kv()->set_mod_revision(mod);
}

}  // namespace

TEST_CASE("range: the header's revision, every key-value, more and count") {
    pb::RangeResponse r;
    r.mutable_header()->set_revision(INT64_MAX);
    auto* kv = r.add_kvs();
    kv->set_key("/secretshim/nodes/node-1/tasks/t1");
    kv->set_value(std::string("\0\xff", 2));
    kv->set_create_revision(3);
    kv->set_mod_revision(7);
    kv->set_version(2);
    r.set_more(true);
    r.set_count(9);
    const RangeResult got = decodeRange(r);
    CHECK(got.revision == INT64_MAX);
    REQUIRE(got.kvs.size() == 1);
    CHECK(got.kvs[0].key == "/secretshim/nodes/node-1/tasks/t1");
    CHECK(got.kvs[0].value == std::string("\0\xff", 2));
    CHECK(got.kvs[0].createRevision == 3);
    CHECK(got.kvs[0].modRevision == 7);
    CHECK(got.kvs[0].version == 2);
    CHECK(got.more);
    CHECK(got.count == 9);
    CHECK(decodeRange(pb::RangeResponse()).kvs.empty());
}

TEST_CASE("watch messages: created, events, progress, compaction; events it cannot apply are skipped by name") {
    pb::WatchResponse created;
    created.mutable_header()->set_revision(9);
    created.set_created(true);
    created.set_watch_id(0);
    const WatchMessage c = decodeWatch(created);
    CHECK(c.created);
    CHECK(c.revision == 9);
    CHECK_FALSE(c.progress());

    pb::WatchResponse events;
    events.mutable_header()->set_revision(12);
    addEvent(events, pb::Event::PUT, "/secretshim/nodes/node-1/tasks/t1", 11);
    addEvent(events, pb::Event::DELETE, "/secretshim/nodes/node-1/secrets/s/00000000000000000001", 12);
    addEvent(events, static_cast<pb::Event::EventType>(7), "/secretshim/nodes/node-1/x", 12);
    addEvent(events, pb::Event::PUT, "", 12);
    const WatchMessage e = decodeWatch(events);
    REQUIRE(e.events.size() == 2);
    CHECK(e.events[0].type == WatchEvent::Type::put);
    CHECK(e.events[0].kv.value == std::string("v\0w", 3));
    CHECK(e.events[1].type == WatchEvent::Type::remove);
    CHECK(e.events[1].kv.modRevision == 12);
    CHECK(e.skipped == std::vector<std::string>{"an event has an unknown type (7)", "an event has no key"});
    CHECK_FALSE(e.progress());

    // A progress notification: the revision alone (watch id -1 when asked for).
    pb::WatchResponse progress;
    progress.mutable_header()->set_revision(15);
    progress.set_watch_id(-1);
    const WatchMessage p = decodeWatch(progress);
    CHECK(p.progress());
    CHECK(p.revision == 15);

    pb::WatchResponse compacted;
    compacted.set_canceled(true);
    compacted.set_compact_revision(57);
    compacted.set_cancel_reason(std::string(500, 'x'));
    const WatchMessage k = decodeWatch(compacted);
    CHECK(k.canceled);
    CHECK(k.compactRevision == 57);
    CHECK(k.cancelReason.size() == 200);
}
