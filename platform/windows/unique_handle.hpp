// Move-only owners of Win32 handles, one type per way of closing them.
#pragma once

#include <windows.h>

#include <utility>

namespace secretshim::platform {

template <class Traits>
class BasicUniqueHandle {
public:
    BasicUniqueHandle() = default;
    explicit BasicUniqueHandle(HANDLE handle) : handle_(Traits::valid(handle) ? handle : nullptr) {}
    BasicUniqueHandle(BasicUniqueHandle&& other) noexcept : handle_(other.release()) {}
    BasicUniqueHandle& operator=(BasicUniqueHandle&& other) noexcept {
        reset(other.release());
        return *this;
    }
    BasicUniqueHandle(const BasicUniqueHandle&) = delete;
    BasicUniqueHandle& operator=(const BasicUniqueHandle&) = delete;
    ~BasicUniqueHandle() { reset(); }

    HANDLE get() const { return handle_; }
    bool valid() const { return handle_ != nullptr; }
    explicit operator bool() const { return valid(); }
    [[nodiscard]] HANDLE release() { return std::exchange(handle_, nullptr); }
    void reset(HANDLE handle = nullptr) {
        if (handle_ != nullptr) Traits::close(handle_);
        handle_ = Traits::valid(handle) ? handle : nullptr;
    }

private:
    HANDLE handle_ = nullptr;  // nullptr stands for "none" whatever the API's own invalid value
};

// CreateFileW and most kernel objects: INVALID_HANDLE_VALUE on failure.
struct KernelHandleTraits {
    static bool valid(HANDLE h) { return h != nullptr && h != INVALID_HANDLE_VALUE; }
    static void close(HANDLE h) { ::CloseHandle(h); }
};

// FindFirstFileExW: closed with FindClose.
struct FindHandleTraits {
    static bool valid(HANDLE h) { return h != nullptr && h != INVALID_HANDLE_VALUE; }
    static void close(HANDLE h) { ::FindClose(h); }
};

using UniqueHandle = BasicUniqueHandle<KernelHandleTraits>;
using UniqueFindHandle = BasicUniqueHandle<FindHandleTraits>;

}  // namespace secretshim::platform
