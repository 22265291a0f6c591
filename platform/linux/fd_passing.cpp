#include "platform/linux/fd_passing.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace secretshim::platform {

Result<void> sendFds(int sock, std::string_view data, std::span<const int> fds) {
    if (fds.size() > kMaxPassedFds) return fail("too many file descriptors to pass");
    if (data.empty()) return fail("cannot send an empty message");
    iovec iov{const_cast<char*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds.empty()) {
        control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) return failErrno("sending a message");
    if (static_cast<std::size_t>(n) != data.size()) return fail("short send of a message");
    return {};
}

Result<FdMessage> receiveFds(int sock, std::size_t maxData) {
    FdMessage out;
    // Not zero-filled: resizing a string to 64 KiB wrote and faulted in
    // every page of it, ~7% of the hook's CPU time in a perf profile; the
    // kernel touches only the pages the message fills.
    const std::unique_ptr<char[]> buffer(new char[maxData]);
    std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxPassedFds));
    iovec iov{buffer.get(), maxData};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n;
    do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return failErrno("receiving a message");
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            out.fds.emplace_back(fd);
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return fail("message truncated");
    if (n == 0) return fail("connection closed");
    out.data.assign(buffer.get(), static_cast<std::size_t>(n));
    return out;
}

}  // namespace secretshim::platform
