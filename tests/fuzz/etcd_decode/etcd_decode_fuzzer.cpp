// Fuzzes what the agent reads from etcd (plugin/cluster): the watch stream
// split into lines, range/txn answers, keys under a node's prefix and the
// records stored there. A member or an admin with write access chooses
// these bytes; bad data must be an error (logged by key and skipped), never
// an exception or a crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "plugin/cluster/etcd_decode.hpp"
#include "plugin/cluster/model.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace secretshim;
using namespace secretshim::cluster;

namespace {

template <class T>
bool checked(const Result<T>& r) {
    if (!r) FUZZ_CHECK_MSG(fuzz::isOneLine(r.error().message), r.error().message);
    return r.has_value();
}

void fuzzRecords(std::string_view value) {
    if (auto t = decodeTask(value); checked(t)) {
        auto again = decodeTask(encodeTask(*t));
        FUZZ_CHECK(again && again->task == t->task && again->secrets == t->secrets && again->signal == t->signal);
    }
    if (auto s = decodeNodeSecret(value); checked(s)) {
        FUZZ_CHECK(s->sealed.epk.size() == 32 && s->sealed.nonce.size() == 12 && s->sealed.tag.size() == 16);
        auto again = decodeNodeSecret(encodeNodeSecret(*s));
        FUZZ_CHECK(again && again->name == s->name && again->version == s->version &&
                   again->sealed.ciphertext == s->sealed.ciphertext);
    }
    if (auto m = decodeMaster(value); checked(m)) {
        auto again = decodeMaster(encodeMaster(*m));
        FUZZ_CHECK(again && again->id == m->id && again->size == m->size);
    }
    if (auto r = decodeRegistration(value); checked(r)) FUZZ_CHECK(r->publicKey.size() == 32);
}

void fuzzKey(std::string_view key) {
    auto ref = parseNodeKey(key);
    if (!checked(ref)) return;
    FUZZ_CHECK(checkName("node", ref->node).has_value());
    const std::string rebuilt = ref->kind == NodeKeyRef::Kind::task ? taskKey(ref->node, ref->name)
                                                                    : nodeSecretKey(ref->node, ref->name);
    FUZZ_CHECK_MSG(rebuilt == key, rebuilt);
    FUZZ_CHECK(rebuilt.rfind(nodePrefix(ref->node), 0) == 0);
}

void fuzzLine(std::string_view line) {
    if (auto m = decodeWatchLine(line); checked(m)) {
        for (const auto& e : m->events) {
            FUZZ_CHECK(!e.kv.key.empty());
            fuzzKey(e.kv.key);
            fuzzRecords(e.kv.value);
        }
        for (const auto& s : m->skipped) FUZZ_CHECK_MSG(fuzz::isOneLine(s), s);
    }
    if (auto r = decodeRange(line); checked(r))
        for (const auto& kv : r->kvs) fuzzKey(kv.key);
    (void)checked(decodeWrite(line));
    (void)checked(decodeAuthToken(line));
    if (auto g = decodeGatewayError(line)) FUZZ_CHECK_MSG(fuzz::isOneLine(g->message), g->message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        // The input as a watch body arriving in two pieces.
        LineSplitter lines(1024);
        const std::size_t cut = size / 3;
        bool ok = lines.feed(input.substr(0, cut));
        for (auto l = lines.next(); ok && l; l = lines.next()) fuzzLine(*l);
        ok = ok && lines.feed(input.substr(cut));
        for (auto l = lines.next(); ok && l; l = lines.next()) {
            FUZZ_CHECK(l->find('\n') == std::string::npos);
            fuzzLine(*l);
        }
        // The whole input as one value and as one key.
        fuzzRecords(input);
        fuzzKey(input);
    } catch (const std::exception& e) {
        FUZZ_CHECK_MSG(false, std::string("exception escaped: ") + e.what());
    }
    return 0;
}
