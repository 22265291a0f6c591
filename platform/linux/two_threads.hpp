// Work split over two threads. The hook and runc wait idle while the agent
// builds or flushes a view, and a node has more than one core: a task with
// many secrets is read, written and wiped on two.
#pragma once

#include <functional>
#include <system_error>
#include <thread>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

// Runs `first` here while `second` runs on a thread of its own, and returns
// first's failure if it had one, else second's. Without a thread to be had,
// `second` runs here after `first` (not at all if `first` failed). Each side
// stops early when the other fails only if the caller tells it to.
inline Result<void> onTwoThreads(const std::function<Result<void>()>& first,
                                 const std::function<Result<void>()>& second) {
    Result<void> other;
    std::thread helper;
    try {
        helper = std::thread([&] { other = second(); });
    } catch (const std::system_error&) {
        Result<void> ok = first();
        return ok ? second() : ok;
    }
    Result<void> ok = first();
    helper.join();
    return ok ? other : ok;
}

}  // namespace secretshim::platform
