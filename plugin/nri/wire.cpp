#include "plugin/nri/wire.hpp"

#include <algorithm>

namespace secretshim::plugin::nri {
namespace {

std::uint32_t readBe32(const char* p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return std::uint32_t{u[0]} << 24 | std::uint32_t{u[1]} << 16 | std::uint32_t{u[2]} << 8 | std::uint32_t{u[3]};
}

void appendBe32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

}  // namespace

Result<std::vector<Message>> Decoder::feed(std::span<const unsigned char> bytes) {
    in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    std::vector<Message> out;
    std::size_t at = 0;
    while (in_.size() - at >= kMuxHeader) {
        const std::uint32_t conn = readBe32(in_.data() + at);
        const std::uint32_t length = readBe32(in_.data() + at + 4);
        if (length > kMaxMuxFrame)
            return fail("NRI: a frame of " + std::to_string(length) + " bytes on connection " + std::to_string(conn) +
                        " (the limit is " + std::to_string(kMaxMuxFrame) + ")");
        if (in_.size() - at - kMuxHeader < length) break;
        if (conn == kPluginConn || conn == kRuntimeConn) {
            streams_[conn].append(in_, at + kMuxHeader, length);
            if (auto ok = cut(conn, out); !ok) return propagate(ok);
        }
        at += kMuxHeader + length;
    }
    in_.erase(0, at);
    return out;
}

Result<void> Decoder::cut(std::uint32_t conn, std::vector<Message>& out) {
    std::string& stream = streams_[conn];
    std::size_t at = 0;
    while (stream.size() - at >= kTtrpcHeader) {
        const std::uint32_t length = readBe32(stream.data() + at);
        if (length > kMaxMessage)
            return fail("NRI: a ttrpc message of " + std::to_string(length) + " bytes on connection " +
                        std::to_string(conn) + " (the limit is " + std::to_string(kMaxMessage) + ")");
        if (stream.size() - at - kTtrpcHeader < length) break;
        Message m;
        m.conn = conn;
        m.stream = readBe32(stream.data() + at + 4);
        m.type = static_cast<std::uint8_t>(stream[at + 8]);
        m.flags = static_cast<std::uint8_t>(stream[at + 9]);
        m.payload.assign(stream, at + kTtrpcHeader, length);
        out.push_back(std::move(m));
        at += kTtrpcHeader + length;
    }
    stream.erase(0, at);
    return {};
}

std::size_t Decoder::buffered() const {
    std::size_t n = in_.size();
    for (const auto& [conn, stream] : streams_) n += stream.size();
    return n;
}

Result<std::string> encode(std::uint32_t conn, std::uint32_t stream, MessageType type, std::string_view payload) {
    if (payload.size() > kMaxMessage)
        return fail("NRI: a message of " + std::to_string(payload.size()) + " bytes (the limit is " +
                    std::to_string(kMaxMessage) + ")");
    std::string message;
    message.reserve(kTtrpcHeader + payload.size());
    appendBe32(message, static_cast<std::uint32_t>(payload.size()));
    appendBe32(message, stream);
    message.push_back(static_cast<char>(type));
    message.push_back(0);  // flags: unary calls carry none
    message.append(payload);

    constexpr std::size_t chunk = kMaxSentFrame - kMuxHeader;
    std::string out;
    out.reserve(message.size() + kMuxHeader * (message.size() / chunk + 1));
    for (std::size_t at = 0; at < message.size(); at += chunk) {
        const std::size_t n = std::min(chunk, message.size() - at);
        appendBe32(out, conn);
        appendBe32(out, static_cast<std::uint32_t>(n));
        out.append(message, at, n);
    }
    return out;
}

}  // namespace secretshim::plugin::nri
