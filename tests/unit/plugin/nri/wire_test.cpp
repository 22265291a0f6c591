// NRI's framing: what containerd sends is cut into whole ttrpc messages
// however its frames fall, and what we send never has a frame that
// containerd's reader would fail on.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "plugin/nri/wire.hpp"

using namespace secretshim::plugin::nri;

namespace {

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string ttrpc(std::uint32_t stream, std::uint8_t type, const std::string& payload) {
    return be32(static_cast<std::uint32_t>(payload.size())) + be32(stream) + static_cast<char>(type) + '\0' + payload;
}

std::string frame(std::uint32_t conn, const std::string& bytes) {
    return be32(conn) + be32(static_cast<std::uint32_t>(bytes.size())) + bytes;
}

std::vector<Message> feedAll(Decoder& d, const std::string& bytes, std::size_t step) {
    std::vector<Message> out;
    for (std::size_t at = 0; at < bytes.size(); at += step) {
        const auto n = std::min(step, bytes.size() - at);
        auto got = d.feed({reinterpret_cast<const unsigned char*>(bytes.data() + at), n});
        REQUIRE(got);
        for (auto& m : *got) out.push_back(std::move(m));
    }
    return out;
}

// Frames as one mux frame each, cut into `sizes`, as containerd's writer
// does it (4096 bytes, then the rest).
std::string framed(std::uint32_t conn, const std::string& message, std::vector<std::size_t> sizes) {
    std::string out;
    std::size_t at = 0;
    for (auto n : sizes) {
        out += frame(conn, message.substr(at, n));
        at += n;
    }
    if (at < message.size()) out += frame(conn, message.substr(at));
    return out;
}

}  // namespace

TEST_CASE("a message split over frames, and frames split over reads, come out whole") {
    const std::string big(40000, 'p');
    const std::string wire = framed(kPluginConn, ttrpc(1, 1, big), {4096}) + frame(kPluginConn, ttrpc(3, 1, "small"));
    for (std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, wire.size()}) {
        CAPTURE(step);
        Decoder d;
        const auto got = feedAll(d, wire, step);
        REQUIRE(got.size() == 2);
        CHECK(got[0].conn == kPluginConn);
        CHECK(got[0].stream == 1);
        CHECK(got[0].type == 1);
        CHECK(got[0].payload == big);
        CHECK(got[1].stream == 3);
        CHECK(got[1].payload == "small");
        CHECK(d.buffered() == 0);
    }
}

TEST_CASE("two messages in one frame, and two connections interleaved, stay apart") {
    const std::string both = ttrpc(5, 1, "first") + ttrpc(7, 1, std::string(5000, 'x'));
    const std::string reply = ttrpc(1, 2, "registered");
    // Connection 1's second message is cut in two, connection 2's reply comes between.
    const std::string wire = frame(kPluginConn, both.substr(0, 30)) + frame(kRuntimeConn, reply) +
                             frame(kPluginConn, both.substr(30)) + frame(9, ttrpc(1, 1, "nobody's"));
    Decoder d;
    const auto got = feedAll(d, wire, 3);
    // In the order each message became whole.
    REQUIRE(got.size() == 3);
    CHECK(got[0].conn == kPluginConn);
    CHECK(got[0].payload == "first");
    CHECK(got[1].conn == kRuntimeConn);
    CHECK(got[1].type == 2);
    CHECK(got[1].payload == "registered");
    CHECK(got[2].conn == kPluginConn);
    CHECK(got[2].stream == 7);
    CHECK(got[2].payload.size() == 5000);
    CHECK(d.buffered() == 0);  // connection 9's frame was dropped, as NRI drops it
}

TEST_CASE("a frame or a message over its limit is refused in one line") {
    Decoder frames;
    auto tooBig = frames.feed({reinterpret_cast<const unsigned char*>(
                                   (be32(kPluginConn) + be32(static_cast<std::uint32_t>(kMaxMuxFrame + 1))).data()),
                               8});
    REQUIRE_FALSE(tooBig);
    CHECK(tooBig.error().message == "NRI: a frame of 16777217 bytes on connection 1 (the limit is 16777216)");

    Decoder messages;
    const std::string header = be32(static_cast<std::uint32_t>(kMaxMessage + 1)) + be32(1) + '\1' + '\0';
    const std::string wire = frame(kRuntimeConn, header);
    auto refused = messages.feed({reinterpret_cast<const unsigned char*>(wire.data()), wire.size()});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message == "NRI: a ttrpc message of 4194305 bytes on connection 2 (the limit is 4194304)");
    // Nothing waits on a length that was never sent.
    CHECK(messages.buffered() < 64);
}

TEST_CASE("what we send comes back whole, in frames containerd's reader takes") {
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4086}, std::size_t{4087},
                             std::size_t{12000}, kMaxMessage}) {
        CAPTURE(size);
        const std::string payload(size, 'a');
        auto bytes = encode(kRuntimeConn, 3, MessageType::response, payload);
        REQUIRE(bytes);
        // Every frame at most 4096 bytes, header included, all on connection 2.
        std::size_t at = 0, frames = 0;
        while (at < bytes->size()) {
            REQUIRE(bytes->size() - at >= kMuxHeader);
            const auto* p = reinterpret_cast<const unsigned char*>(bytes->data() + at);
            const std::uint32_t conn = p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
            const std::uint32_t length = p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7];
            CHECK(conn == kRuntimeConn);
            CHECK(kMuxHeader + length <= kMaxSentFrame);
            CHECK(length > 0);
            at += kMuxHeader + length;
            ++frames;
        }
        CHECK(at == bytes->size());
        CHECK(frames == (size + kTtrpcHeader + kMaxSentFrame - kMuxHeader - 1) / (kMaxSentFrame - kMuxHeader));
        Decoder d;
        auto got = d.feed({reinterpret_cast<const unsigned char*>(bytes->data()), bytes->size()});
        REQUIRE(got);
        REQUIRE(got->size() == 1);
        CHECK(got->at(0).stream == 3);
        CHECK(got->at(0).type == 2);
        CHECK(got->at(0).payload == payload);
    }
    auto over = encode(kPluginConn, 1, MessageType::request, std::string(kMaxMessage + 1, 'a'));
    REQUIRE_FALSE(over);
    CHECK(over.error().message == "NRI: a message of 4194305 bytes (the limit is 4194304)");
}
