#include "platform/linux/helper_process.hpp"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>

#include "platform/linux/fd_passing.hpp"

namespace secretshim::platform {
namespace {

// Closes every fd but stderr and `keep`, with close_range(2) (5.9) over the
// gaps between them.
Result<void> closeInherited(std::vector<int> keep) {
    keep.push_back(STDERR_FILENO);
    std::sort(keep.begin(), keep.end());
    unsigned next = 0;
    for (int fd : keep) {
        if (fd < 0 || static_cast<unsigned>(fd) < next) continue;
        if (static_cast<unsigned>(fd) > next && ::close_range(next, static_cast<unsigned>(fd) - 1, 0) != 0)
            return failErrno("closing inherited fds");
        next = static_cast<unsigned>(fd) + 1;
    }
    if (::close_range(next, UINT_MAX, 0) != 0) return failErrno("closing inherited fds");
    return {};
}

// The wire form of a helper's result: "+" with fds, or "-CODE:MESSAGE".
std::string encodeError(const Error& e) { return "-" + std::to_string(e.code) + ":" + e.message; }

Error decodeError(const std::string& data) {
    const auto colon = data.find(':');
    if (data.size() < 2 || colon == std::string::npos) return Error{.message = "helper process failed"};
    int code = 0;
    try {
        code = std::stoi(data.substr(1, colon - 1));
    } catch (const std::exception&) {
        return Error{.message = data.substr(1)};
    }
    // The helper's message already ends with its strerror text.
    if (code == 0) return Error{.message = data.substr(colon + 1)};
    return errorWith(code, data.substr(colon + 1));
}

}  // namespace

Result<std::vector<UniqueFd>> runInHelper(std::span<const int> keep, const HelperFn& fn) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        return failErrno("creating a helper socket");
    UniqueFd parentEnd(pair[0]), childEnd(pair[1]);

    const pid_t pid = ::fork();
    if (pid < 0) return failErrno("forking a helper");
    if (pid == 0) {
        std::vector<int> kept(keep.begin(), keep.end());
        kept.push_back(childEnd.get());
        Result<std::vector<UniqueFd>> result = closeInherited(std::move(kept)).and_then([] {
            return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? Result<void>() : failErrno("setting no_new_privs");
        }).and_then([&] { return fn(); });
        int status = 0;
        if (result) {
            std::vector<int> raw;
            for (const auto& fd : *result) raw.push_back(fd.get());
            status = sendFds(childEnd.get(), "+", raw) ? 0 : 1;
        } else {
            status = sendFds(childEnd.get(), encodeError(result.error()), {}) ? 2 : 1;
        }
        // The parent's fds are closed already: nothing here may run
        // destructors or atexit handlers that expect them.
        (void)parentEnd.release();
        ::_exit(status);
    }
    childEnd.reset();
    auto message = receiveFds(parentEnd.get(), 4096);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!message) return propagate(message, "helper process");
    if (message->data.empty() || message->data[0] != '+') return tl::unexpected(decodeError(message->data));
    return std::move(message->fds);
}

}  // namespace secretshim::platform
