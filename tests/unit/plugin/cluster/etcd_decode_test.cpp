#include <string>

#include <doctest/doctest.h>

#include "plugin/cluster/etcd_client.hpp"
#include "plugin/cluster/etcd_decode.hpp"

using namespace secretshim::cluster;

TEST_CASE("range: revisions as strings, omitted zero values, base64 keys") {
    auto r = decodeRange(
        R"({"header":{"revision":"42"},"kvs":[{"key":"L2E=","value":"eA==","create_revision":"5","mod_revision":"41","version":"3"},{"key":"L2I="}],"count":"2"})");
    REQUIRE(r.has_value());
    CHECK(r->revision == 42);
    REQUIRE(r->kvs.size() == 2);
    CHECK(r->kvs[0].key == "/a");
    CHECK(r->kvs[0].value == "x");
    CHECK(r->kvs[0].modRevision == 41);
    CHECK(r->kvs[1].value.empty());
    CHECK(r->count == 2);
    auto empty = decodeRange(R"({"header":{"revision":"7"}})");
    REQUIRE(empty.has_value());
    CHECK(empty->kvs.empty());
    CHECK_FALSE(decodeRange(R"({"header":{"revision":"x"}})").has_value());
    CHECK_FALSE(decodeRange(R"({"header":{"revision":"1"},"kvs":[{"key":"%%%"}]})").has_value());
    CHECK_FALSE(decodeRange("not json").has_value());
}

TEST_CASE("watch lines: created, events, progress, compaction, errors") {
    auto created = decodeWatchLine(R"({"result":{"header":{"revision":"9"},"created":true}})");
    REQUIRE(created.has_value());
    CHECK(created->created);
    CHECK_FALSE(created->progress());
    auto events = decodeWatchLine(
        R"({"result":{"header":{"revision":"11"},"events":[{"kv":{"key":"L2E=","value":"eQ==","mod_revision":"10"}},{"type":"DELETE","kv":{"key":"L2I=","mod_revision":"11"}},{"type":"BOGUS"},{"kv":{"key":"!"}}]}})");
    REQUIRE(events.has_value());
    REQUIRE(events->events.size() == 2);
    CHECK(events->events[0].type == WatchEvent::Type::put);
    CHECK(events->events[1].type == WatchEvent::Type::remove);
    CHECK(events->events[1].kv.key == "/b");
    CHECK(events->skipped.size() == 2);
    auto progress = decodeWatchLine(R"({"result":{"header":{"revision":"12"}}})");
    REQUIRE(progress.has_value());
    CHECK(progress->progress());
    CHECK(progress->revision == 12);
    auto compacted = decodeWatchLine(
        R"({"result":{"header":{"revision":"20"},"canceled":true,"compact_revision":"15"}})");
    REQUIRE(compacted.has_value());
    CHECK(compacted->canceled);
    CHECK(compacted->compactRevision == 15);
    auto error = decodeWatchLine(R"({"error":{"grpc_code":16,"http_code":401,"message":"invalid auth token"}})");
    REQUIRE_FALSE(error.has_value());
    CHECK(error.error().message.find("invalid auth token") != std::string::npos);
}

TEST_CASE("line splitter: partial lines wait, long lines fail") {
    LineSplitter s(16);
    CHECK(s.feed("{\"a\":1}\n{\"b\""));
    CHECK(s.next() == std::optional<std::string>("{\"a\":1}"));
    CHECK_FALSE(s.next().has_value());
    CHECK(s.feed(":2}\r\n"));
    CHECK(s.next() == std::optional<std::string>("{\"b\":2}"));
    CHECK_FALSE(s.feed(std::string(17, 'x')));
}

TEST_CASE("int64 parsing and gateway errors") {
    CHECK(parseInt64("9223372036854775807") == std::optional<std::int64_t>(INT64_MAX));
    CHECK_FALSE(parseInt64("9223372036854775808").has_value());
    CHECK_FALSE(parseInt64("1x").has_value());
    CHECK_FALSE(parseInt64("").has_value());
    auto g = decodeGatewayError(R"({"error":"etcdserver: permission denied","code":7,"message":"etcdserver: permission denied"})");
    REQUIRE(g.has_value());
    CHECK(g->code == 7);
    CHECK(g->message == "etcdserver: permission denied");
    CHECK(prefixEnd("/secretshim/nodes/n/") == "/secretshim/nodes/n0");
}
