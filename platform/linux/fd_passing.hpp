// Sends and receives file descriptors with a small message over a unix
// socket (SCM_RIGHTS).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

inline constexpr std::size_t kMaxPassedFds = 253;  // SCM_MAX_FD

struct FdMessage {
    std::string data;
    std::vector<UniqueFd> fds;
};

Result<void> sendFds(int sock, std::string_view data, std::span<const int> fds);
// Receives one message of at most maxData bytes. Fails on a truncated
// message or control data, closing whatever fds did arrive.
Result<FdMessage> receiveFds(int sock, std::size_t maxData);

}  // namespace secretshim::platform
