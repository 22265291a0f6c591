// Runs a function in a forked, single-threaded child and brings back its
// result: an error (its errno and message) or a list of fds. setns(CLONE_NEWNS)
// is refused in a multi-threaded process and changes the caller for good, so
// the namespace work of a long-lived process happens in such a child.
//
// The child starts with nothing of the parent's but what it is given: every
// inherited fd is closed except stderr, the result socket and `keep` (a
// helper inside a container must not hold other tasks' views, the agent's
// socket or its state directory), and it runs with no_new_privs. Helpers
// that enter a container confine themselves further after setns()
// (platform/linux/confine.hpp, called from attach.cpp and the tmpfs_view_*.cpp).
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

using HelperFn = std::function<Result<std::vector<UniqueFd>>()>;

Result<std::vector<UniqueFd>> runInHelper(std::span<const int> keep, const HelperFn& fn);

}  // namespace secretshim::platform
