#include "platform/linux/helper_process.hpp"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "platform/linux/fd_passing.hpp"

namespace secretshim::platform {

Result<std::vector<UniqueFd>> runInHelper(const HelperFn& fn) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        return failErrno("creating a helper socket");
    UniqueFd parentEnd(pair[0]), childEnd(pair[1]);

    const pid_t pid = ::fork();
    if (pid < 0) return failErrno("forking a helper");
    if (pid == 0) {
        parentEnd.reset();
        auto result = fn();
        int status = 0;
        if (result) {
            std::vector<int> raw;
            for (const auto& fd : *result) raw.push_back(fd.get());
            status = sendFds(childEnd.get(), "+", raw) ? 0 : 1;
        } else {
            status = sendFds(childEnd.get(), "-" + result.error().message, {}) ? 2 : 1;
        }
        ::_exit(status);
    }
    childEnd.reset();
    auto message = receiveFds(parentEnd.get(), 4096);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!message) return tl::unexpected(wrap(message.error(), "helper process"));
    if (message->data.empty() || message->data[0] != '+')
        return fail(message->data.size() > 1 ? message->data.substr(1) : "helper process failed");
    return std::move(message->fds);
}

}  // namespace secretshim::platform
