// A move-only buffer for plaintext secrets: its pages are locked in RAM
// (never swapped), left out of core dumps, zeroed in a forked child, and
// wiped before they are returned to the kernel. Linux: secure_buffer.cpp;
// Windows: secure_buffer_win.cpp (VirtualLock); what does not depend on
// the platform is here.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

class SecureBuffer {
public:
    // Maps `size` bytes (> 0), zero-filled. A failed mlock (EPERM, ENOMEM,
    // EAGAIN: RLIMIT_MEMLOCK) is not an error; locked() reports it.
    static Result<SecureBuffer> allocate(std::size_t size);

    SecureBuffer() = default;  // empty: data() is null, size() is 0
    SecureBuffer(SecureBuffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          mapped_(std::exchange(other.mapped_, 0)),
          locked_(std::exchange(other.locked_, false)) {}
    SecureBuffer& operator=(SecureBuffer&& other) noexcept {
        if (this != &other) {
            reset();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
            mapped_ = std::exchange(other.mapped_, 0);
            locked_ = std::exchange(other.locked_, false);
        }
        return *this;
    }
    SecureBuffer(const SecureBuffer&) = delete;
    SecureBuffer& operator=(const SecureBuffer&) = delete;
    ~SecureBuffer() { reset(); }

    unsigned char* data() { return data_; }
    const unsigned char* data() const { return data_; }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    std::span<unsigned char> span() { return {data_, size_}; }
    std::span<const unsigned char> span() const { return {data_, size_}; }

    // Zeroes the contents; the buffer keeps its size.
    void wipe();
    // Wipes and unmaps; the buffer is empty afterwards.
    void reset();
    // Whether the pages are mlock'ed.
    bool locked() const { return locked_; }

private:
    SecureBuffer(unsigned char* data, std::size_t size, std::size_t mapped, bool locked)
        : data_(data), size_(size), mapped_(mapped), locked_(locked) {}

    unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t mapped_ = 0;  // size_ rounded up to whole pages
    bool locked_ = false;
};

}  // namespace secretshim::plugin
