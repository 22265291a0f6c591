// Fuzzes the NRI frame decoder (plugin/nri/wire): the bytes come from
// whoever holds the runtime's end of the NRI socket. The input's first byte
// picks where the rest is cut into reads; the decoder must give the same
// messages (or the same refusal) however the bytes were cut, keep what it
// holds within its limits, and every message it gives must survive a round
// trip through our own encoder.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "plugin/nri/wire.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace secretshim;
using namespace secretshim::plugin::nri;

namespace {

struct Outcome {
    std::vector<Message> messages;
    std::string error;
};

Outcome decode(const std::uint8_t* data, std::size_t size, std::size_t step) {
    Decoder d;
    Outcome out;
    for (std::size_t at = 0; at < size; at += step) {
        auto got = d.feed({data + at, std::min(step, size - at)});
        if (!got) {
            out.error = got.error().message;
            FUZZ_CHECK_MSG(fuzz::isOneLine(out.error), fuzz::printable(out.error));
            return out;
        }
        for (auto& m : *got) out.messages.push_back(std::move(m));
        // What waits for more: at most one frame of each kind in flight.
        FUZZ_CHECK(d.buffered() <= kMuxHeader + kMaxMuxFrame + 2 * (kTtrpcHeader + kMaxMessage + kMaxMuxFrame));
    }
    return out;
}

bool same(const Message& a, const Message& b) {
    return a.conn == b.conn && a.stream == b.stream && a.type == b.type && a.flags == b.flags &&
           a.payload == b.payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t step = 1 + data[0] % 64;
    ++data;
    --size;
    const Outcome whole = decode(data, size, size == 0 ? 1 : size);
    const Outcome pieces = decode(data, size, step);
    FUZZ_CHECK(whole.error == pieces.error);
    if (whole.error.empty()) {
        FUZZ_CHECK(whole.messages.size() == pieces.messages.size());
        for (std::size_t i = 0; i < whole.messages.size(); ++i) FUZZ_CHECK(same(whole.messages[i], pieces.messages[i]));
    }
    for (const Message& m : pieces.messages) {
        FUZZ_CHECK(m.conn == kPluginConn || m.conn == kRuntimeConn);
        FUZZ_CHECK(m.payload.size() <= kMaxMessage);
        if (m.type < 1 || m.type > 3) continue;  // ours never sends another type
        auto bytes = encode(m.conn, m.stream, static_cast<MessageType>(m.type), m.payload);
        FUZZ_CHECK(bytes.has_value());
        Decoder again;
        auto back = again.feed({reinterpret_cast<const unsigned char*>(bytes->data()), bytes->size()});
        FUZZ_CHECK(back && back->size() == 1);
        Message expected = m;
        expected.flags = 0;  // ours sends no flags
        FUZZ_CHECK(same(back->front(), expected));
    }
    return 0;
}
