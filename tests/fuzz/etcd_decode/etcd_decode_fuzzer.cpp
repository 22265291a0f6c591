// Fuzzes what the agent reads from etcd (plugin/cluster): a watch message
// and a range answer as protobuf, keys under a node's prefix and the records
// stored there. A member or an admin with write access chooses these bytes;
// bad data must be an error (logged by key and skipped), never an exception
// or a crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "etcd.pb.h"
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
    if (auto p = decodePublished(value); checked(p)) {
        auto again = decodePublished(encodePublished(*p));
        FUZZ_CHECK(again && again->id == p->id && again->version == p->version && again->sig == p->sig);
    }
    if (auto h = decodeHolder(value); checked(h)) {
        auto again = decodeHolder(encodeHolder(*h));
        FUZZ_CHECK(again && again->secret == h->secret && again->task == h->task && again->node == h->node);
    }
    if (auto s = decodeService(value); checked(s)) {
        auto again = decodeService(encodeService(*s));
        FUZZ_CHECK(again && again->name == s->name && again->grants.secrets == s->grants.secrets && again->sig == s->sig);
    }
    if (auto p = decodePlacement(value); checked(p)) {
        auto again = decodePlacement(encodePlacement(*p));
        FUZZ_CHECK(again && again->node == p->node && again->task.secrets == p->task.secrets && again->sig == p->sig);
    }
}

void fuzzKey(std::string_view key) {
    auto ref = parseNodeKey(key);
    if (!checked(ref)) return;
    FUZZ_CHECK(checkName("node", ref->node).has_value());
    const std::string rebuilt = ref->kind == NodeKeyRef::Kind::task ? taskKey(ref->node, ref->name)
                                                                    : nodeSecretKey(ref->node, ref->name, ref->version);
    FUZZ_CHECK_MSG(rebuilt == key, rebuilt);
    FUZZ_CHECK(rebuilt.rfind(nodePrefix(ref->node), 0) == 0);
}

void fuzzMessage(std::string_view bytes) {
    etcdserverpb::WatchResponse watch;
    if (watch.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        const WatchMessage m = decodeWatch(watch);
        for (const auto& e : m.events) {
            FUZZ_CHECK(!e.kv.key.empty());
            fuzzKey(e.kv.key);
            fuzzRecords(e.kv.value);
        }
        for (const auto& s : m.skipped) FUZZ_CHECK_MSG(fuzz::isOneLine(s), s);
        FUZZ_CHECK(m.cancelReason.size() <= 200);
    }
    etcdserverpb::RangeResponse range;
    if (range.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        for (const auto& kv : decodeRange(range).kvs) fuzzKey(kv.key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        fuzzMessage(input);
        // The whole input as one value and as one key.
        fuzzRecords(input);
        fuzzKey(input);
    } catch (const std::exception& e) {
        FUZZ_CHECK_MSG(false, std::string("exception escaped: ") + e.what());
    }
    return 0;
}
