// Runs a function in a forked, single-threaded child and brings back its
// result: an error message or a list of fds. setns(CLONE_NEWNS) is refused
// in a multi-threaded process and changes the caller for good, so the
// namespace work of a long-lived process happens in such a child.
#pragma once

#include <functional>
#include <vector>

#include "mountfs/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

using HelperFn = std::function<Result<std::vector<UniqueFd>>()>;

Result<std::vector<UniqueFd>> runInHelper(const HelperFn& fn);

}  // namespace secretshim::platform
