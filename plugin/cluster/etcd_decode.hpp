// Decoding the etcd v3 JSON gateway's answers: range responses and the
// watch stream (one JSON object per line, base64 keys and values, 64-bit
// numbers as strings, zero values omitted). Nothing here throws; a
// malformed answer or event is an Error, or a skipped event with a note.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"

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

// A gateway error body: {"error":..., "code":N, "message":...}.
struct GatewayError {
    int code = 0;  // gRPC status code
    std::string message;
};

// Reads a 64-bit integer that the gateway wrote as a string (or a number).
std::optional<std::int64_t> parseInt64(std::string_view text);

Result<RangeResult> decodeRange(std::string_view body);
// The header revision of a put, delete-range or txn response, and for a
// txn its "succeeded".
struct WriteResult {
    std::int64_t revision = 0;
    bool succeeded = false;
    std::int64_t deleted = 0;
    std::vector<RangeResult> ranges;  // the responses of range operations in a txn
};
Result<WriteResult> decodeWrite(std::string_view body);
std::optional<GatewayError> decodeGatewayError(std::string_view body);
Result<std::string> decodeAuthToken(std::string_view body);

// One line of the watch stream. The gateway wraps each message in
// {"result": {...}}; an {"error": ...} line is an Error.
Result<WatchMessage> decodeWatchLine(std::string_view line);

// Splits the watch body into lines; the last one may lack its newline until
// more data comes. A line longer than `maxLine` is an error (the stream is
// then unusable and must be reopened).
class LineSplitter {
public:
    explicit LineSplitter(std::size_t maxLine = 8 << 20) : maxLine_(maxLine) {}
    // Appends data; returns false once a line is too long.
    bool feed(std::string_view data);
    // The next complete line (without the newline), if any.
    std::optional<std::string> next();
    // What is left without a newline (the stream ended).
    std::string rest() { return std::exchange(buffer_, {}); }

private:
    std::size_t maxLine_;
    std::string buffer_;
    std::size_t scanned_ = 0;
};

}  // namespace secretshim::cluster
