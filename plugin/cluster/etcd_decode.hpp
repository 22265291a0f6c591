// What the etcd client hands its callers: key-values, range results, write
// results and watch messages, decoded from etcd's protobuf answers
// (plugin/cluster/etcd.proto).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace etcdserverpb {
class RangeResponse;
class WatchResponse;
}  // namespace etcdserverpb

namespace secretshim::cluster {

struct KeyValue {
    std::string key;
    std::string value;
    std::int64_t createRevision = 0;
    std::int64_t modRevision = 0;
    std::int64_t version = 0;
};

struct RangeResult {
    std::int64_t revision = 0;  // the store's revision when read
    std::vector<KeyValue> kvs;
    bool more = false;
    std::int64_t count = 0;
};

struct WatchEvent {
    enum class Type { put, remove } type = Type::put;
    KeyValue kv;
};

struct WatchMessage {
    std::int64_t revision = 0;  // header.revision
    std::string watchId;
    bool created = false;
    bool canceled = false;
    std::int64_t compactRevision = 0;  // set with canceled after a compaction
    std::string cancelReason;
    std::vector<WatchEvent> events;
    std::vector<std::string> skipped;  // one line per event that could not be read
    // A progress notification: no events, not created, not canceled.
    bool progress() const { return events.empty() && skipped.empty() && !created && !canceled; }
};

// A put, delete-range or txn: the header's revision, and for a txn whether
// it succeeded and what its range operations read.
struct WriteResult {
    std::int64_t revision = 0;
    bool succeeded = false;
    std::int64_t deleted = 0;
    std::vector<RangeResult> ranges;
};

// etcd's answers, as our structs. Nothing here throws; an event that
// cannot be applied (an unknown type, no key) is skipped with a note.
RangeResult decodeRange(const etcdserverpb::RangeResponse& response);
WatchMessage decodeWatch(const etcdserverpb::WatchResponse& response);

}  // namespace secretshim::cluster
