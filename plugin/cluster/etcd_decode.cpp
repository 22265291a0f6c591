#include "plugin/cluster/etcd_decode.hpp"

#include <charconv>
#include <utility>

#include <nlohmann/json.hpp>

#include "plugin/cluster/base64.hpp"
#include "plugin/protocol/json_fields.hpp"

namespace secretshim::cluster {

using nlohmann::json;
using plugin::boolField;

namespace {

json parse(std::string_view text) { return json::parse(text.begin(), text.end(), nullptr, false); }

// A 64-bit field: absent means 0 (the gateway omits zero values).
bool int64Field(const json& j, const char* key, std::int64_t& out) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        out = 0;
        return true;
    }
    if (it->is_string()) {
        auto v = parseInt64(it->get_ref<const std::string&>());
        if (!v) return false;
        out = *v;
        return true;
    }
    if (it->is_number_integer()) {
        out = it->get<std::int64_t>();
        return true;
    }
    return false;
}

bool bytesField(const json& j, const char* key, std::string& out) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        out.clear();
        return true;
    }
    if (!it->is_string()) return false;
    auto bytes = base64Decode(it->get_ref<const std::string&>());
    if (!bytes) return false;
    out = std::move(*bytes);
    return true;
}

Result<KeyValue> decodeKv(const json& j) {
    if (!j.is_object()) return fail("a key-value is not an object");
    KeyValue kv;
    if (!bytesField(j, "key", kv.key) || kv.key.empty()) return fail("a key-value has no valid key");
    if (!bytesField(j, "value", kv.value)) return fail("key " + quote(kv.key) + ": the value is not base64");
    if (!int64Field(j, "create_revision", kv.createRevision) || !int64Field(j, "mod_revision", kv.modRevision) ||
        !int64Field(j, "version", kv.version))
        return fail("key " + quote(kv.key) + ": a revision is not a 64-bit integer");
    return kv;
}

Result<std::int64_t> headerRevision(const json& j) {
    const auto h = j.find("header");
    if (h == j.end() || !h->is_object()) return fail("the answer has no header");
    std::int64_t rev = 0;
    if (!int64Field(*h, "revision", rev) || rev < 0) return fail("the answer's revision is not a 64-bit integer");
    return rev;
}

Result<RangeResult> rangeFrom(const json& j) {
    RangeResult r;
    auto rev = headerRevision(j);
    if (!rev) return propagate(rev);
    r.revision = *rev;
    r.more = boolField(j, "more");
    if (!int64Field(j, "count", r.count)) return fail("the range's count is not a 64-bit integer");
    const auto kvs = j.find("kvs");
    if (kvs != j.end() && !kvs->is_null()) {
        if (!kvs->is_array()) return fail("the range's kvs is not an array");
        for (const auto& item : *kvs) {
            auto kv = decodeKv(item);
            if (!kv) return propagate(kv);
            r.kvs.push_back(std::move(*kv));
        }
    }
    return r;
}

}  // namespace

std::optional<std::int64_t> parseInt64(std::string_view text) {
    std::int64_t v = 0;
    if (text.empty() || text.size() > 20) return std::nullopt;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

std::optional<GatewayError> decodeGatewayError(std::string_view body) {
    const json j = parse(body);
    if (!j.is_object()) return std::nullopt;
    const auto e = j.find("error");
    const auto m = j.find("message");
    if (e == j.end() && m == j.end()) return std::nullopt;
    GatewayError g;
    const auto c = j.find("code");
    if (c != j.end() && c->is_number_integer()) g.code = static_cast<int>(c->get<std::int64_t>() & 0xffff);
    if (m != j.end() && m->is_string())
        g.message = m->get<std::string>();
    else if (e != j.end() && e->is_string())
        g.message = e->get<std::string>();
    else if (e != j.end() && e->is_object()) {
        const auto em = e->find("message");
        if (em != e->end() && em->is_string()) g.message = em->get<std::string>();
        const auto ec = e->find("grpc_code");
        if (ec != e->end() && ec->is_number_integer()) g.code = static_cast<int>(ec->get<std::int64_t>() & 0xffff);
    }
    if (g.message.empty()) g.message = "unknown error";
    g.message = quote(g.message.substr(0, 200));
    g.message = g.message.substr(1, g.message.size() - 2);  // one line, without the quotes
    return g;
}

Result<RangeResult> decodeRange(std::string_view body) {
    const json j = parse(body);
    if (!j.is_object()) return fail("the range answer is not a JSON object");
    return rangeFrom(j);
}

Result<WriteResult> decodeWrite(std::string_view body) {
    const json j = parse(body);
    if (!j.is_object()) return fail("the answer is not a JSON object");
    WriteResult w;
    auto rev = headerRevision(j);
    if (!rev) return propagate(rev);
    w.revision = *rev;
    w.succeeded = boolField(j, "succeeded");
    if (!int64Field(j, "deleted", w.deleted)) return fail("the answer's deleted count is not an integer");
    const auto responses = j.find("responses");
    if (responses != j.end() && responses->is_array()) {
        for (const auto& r : *responses) {
            if (!r.is_object()) continue;
            const auto range = r.find("response_range");
            if (range == r.end() || !range->is_object()) continue;
            json withHeader = *range;
            if (!withHeader.contains("header")) withHeader["header"] = j["header"];
            auto decoded = rangeFrom(withHeader);
            if (!decoded) return propagate(decoded);
            w.ranges.push_back(std::move(*decoded));
        }
    }
    return w;
}

Result<std::string> decodeAuthToken(std::string_view body) {
    const json j = parse(body);
    const auto t = j.is_object() ? j.find("token") : j.end();
    if (t == j.end() || !t->is_string() || t->get_ref<const std::string&>().empty() ||
        t->get_ref<const std::string&>().size() > 4096 ||
        t->get_ref<const std::string&>().find_first_of("\r\n") != std::string::npos)
        return fail("the authentication answer has no token");
    return t->get<std::string>();
}

Result<WatchMessage> decodeWatchLine(std::string_view line) {
    const json j = parse(line);
    if (!j.is_object()) return fail("a watch message is not a JSON object");
    if (auto e = j.find("error"); e != j.end()) {
        auto g = decodeGatewayError(line);
        return failWith(EPROTO, "the watch failed: " + (g ? g->message : std::string("unknown error")));
    }
    const auto r = j.find("result");
    if (r == j.end() || !r->is_object()) return fail("a watch message has no result");
    WatchMessage m;
    auto rev = headerRevision(*r);
    if (!rev) return propagate(rev);
    m.revision = *rev;
    if (const auto id = r->find("watch_id"); id != r->end() && id->is_string()) m.watchId = id->get<std::string>();
    m.created = boolField(*r, "created");
    m.canceled = boolField(*r, "canceled");
    if (!int64Field(*r, "compact_revision", m.compactRevision)) return fail("a watch message's compact_revision is not an integer");
    if (const auto reason = r->find("cancel_reason"); reason != r->end() && reason->is_string())
        m.cancelReason = reason->get<std::string>().substr(0, 200);
    const auto events = r->find("events");
    if (events != r->end() && !events->is_null()) {
        if (!events->is_array()) return fail("a watch message's events is not an array");
        for (const auto& e : *events) {
            if (!e.is_object()) {
                m.skipped.push_back("an event is not an object");
                continue;
            }
            WatchEvent ev;
            const auto type = e.find("type");
            if (type == e.end() || type->is_null() || (type->is_string() && type->get_ref<const std::string&>() == "PUT"))
                ev.type = WatchEvent::Type::put;
            else if (type->is_string() && type->get_ref<const std::string&>() == "DELETE")
                ev.type = WatchEvent::Type::remove;
            else {
                m.skipped.push_back("an event has an unknown type");
                continue;
            }
            const auto kv = e.find("kv");
            auto decoded = kv != e.end() ? decodeKv(*kv) : fail("an event has no kv");
            if (!decoded) {
                m.skipped.push_back(decoded.error().message);
                continue;
            }
            ev.kv = std::move(*decoded);
            m.events.push_back(std::move(ev));
        }
    }
    return m;
}

bool LineSplitter::feed(std::string_view data) {
    buffer_.append(data);
    if (buffer_.find('\n', scanned_) != std::string::npos) return true;
    scanned_ = buffer_.size();  // not searched again on the next feed
    return buffer_.size() <= maxLine_;
}

std::optional<std::string> LineSplitter::next() {
    const auto nl = buffer_.find('\n');
    if (nl == std::string::npos) {
        scanned_ = buffer_.size();
        return std::nullopt;
    }
    std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    scanned_ = 0;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

}  // namespace secretshim::cluster
