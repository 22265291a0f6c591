// NRI's wire, as containerd 1.7 (NRI 0.6) speaks it on its plugin socket:
// ttrpc messages (a 10-byte header: length, stream id, type, flags, all
// big-endian; then a protobuf payload of at most 4 MiB) carried over NRI's
// multiplexer, which splits one unix stream into logical connections (an
// 8-byte header: connection id, length). On connection 1 the runtime calls
// the plugin; on connection 2 the plugin calls the runtime. There is no
// handshake: both ends know the ids.
//
// Frames do not line up with messages either way. containerd writes a large
// message as a 4096-byte frame and one frame with the rest, so the reader
// joins each connection's frames into one byte stream and cuts messages
// from it. containerd's reader, for its part, fails the whole connection
// on a frame larger than 4096 bytes (it then drops the plugin and creates
// the container as if the plugin did not exist), so the writer cuts each
// message into frames of at most 4096 bytes and never puts two messages in
// one frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin::nri {

inline constexpr std::uint32_t kPluginConn = 1;   // the runtime's calls to us
inline constexpr std::uint32_t kRuntimeConn = 2;  // our calls to the runtime
inline constexpr std::size_t kMuxHeader = 8;
inline constexpr std::size_t kTtrpcHeader = 10;
inline constexpr std::size_t kMaxMuxFrame = std::size_t{16} << 20;  // NRI's writer's limit
inline constexpr std::size_t kMaxMessage = std::size_t{4} << 20;    // ttrpc's
inline constexpr std::size_t kMaxSentFrame = 4096;                   // containerd's reader's

enum class MessageType : std::uint8_t { request = 1, response = 2, data = 3 };

struct Message {
    std::uint32_t conn = 0;
    std::uint32_t stream = 0;
    std::uint8_t type = 0;  // a MessageType, unchecked: the session decides
    std::uint8_t flags = 0;
    std::string payload;
};

// Cuts the bytes read from the socket into whole ttrpc messages. Frames for
// a connection other than 1 and 2 are dropped, as NRI's own reader does.
// An error (a frame or message over its limit) leaves the streams out of
// step for good: the caller closes the connection.
class Decoder {
public:
    Result<std::vector<Message>> feed(std::span<const unsigned char> bytes);
    // Bytes held that are not yet a whole message (bounded by the limits).
    std::size_t buffered() const;

private:
    Result<void> cut(std::uint32_t conn, std::vector<Message>& out);

    std::string in_;                                // socket bytes not yet a whole frame
    std::map<std::uint32_t, std::string> streams_;  // per connection: bytes not yet a whole message
};

// The bytes that send one ttrpc message on `conn`: mux frames of at most
// kMaxSentFrame bytes. A payload over kMaxMessage is refused.
Result<std::string> encode(std::uint32_t conn, std::uint32_t stream, MessageType type, std::string_view payload);

}  // namespace secretshim::plugin::nri
