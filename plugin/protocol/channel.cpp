#include "plugin/protocol/channel.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "platform/linux/fd_passing.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

using platform::UniqueFd;

Result<UniqueFd> connectAgent(const std::string& socketPath, std::chrono::milliseconds timeout) {
    sockaddr_un addr{};
    if (socketPath.size() >= sizeof addr.sun_path) return fail("socket path too long: " + socketPath);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socketPath.data(), socketPath.size());
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!sock) return failErrno("socket");
    if (auto ok = setSocketTimeout(sock.get(), timeout); !ok) return propagate(ok);
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return failErrno("cannot reach the secretshim agent at " + socketPath);
    // The agent is root, as its clients must be: whoever else listens at
    // the path (a directory that is not root's, a socket left for another
    // user) gets no container's request and no secret's value.
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return failErrno("checking the secretshim agent at " + socketPath);
    if (cred.uid != 0)
        return fail("the secretshim agent at " + socketPath + " is not root's (uid " + std::to_string(cred.uid) +
                    "): refusing to talk to it");
    return sock;
}

Result<void> setSocketTimeout(int sock, std::chrono::milliseconds timeout) {
    // Zero would mean no timeout at all.
    if (timeout.count() <= 0) return failWith(EAGAIN, "timed out waiting for the secretshim agent");
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    if (::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        return failErrno("setting socket timeouts");
    return {};
}

std::string encodeJson(const nlohmann::json& body) {
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<void> sendJson(int sock, const nlohmann::json& body, std::span<const int> fds) {
    const std::string text = encodeJson(body);
    if (text.size() > kMaxMessage) return fail("message too large");
    return platform::sendFds(sock, text, fds);
}

Result<JsonMessage> receiveJson(int sock) {
    auto msg = platform::receiveFds(sock, kMaxMessage);
    if (!msg) {
        if (msg.error().code == EAGAIN)
            return failWith(EAGAIN, "timed out waiting for the secretshim agent");
        return propagate(msg);
    }
    return decodeJson(msg->data, std::move(msg->fds));
}

Result<JsonMessage> decodeJson(std::string_view data, std::vector<platform::UniqueFd> fds) {
    JsonMessage out;
    out.body = nlohmann::json::parse(data, nullptr, false);
    if (out.body.is_discarded() || !out.body.is_object()) return failWith(EBADMSG, "malformed message");
    out.fds = std::move(fds);
    return out;
}

}  // namespace secretshim::plugin
