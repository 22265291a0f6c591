#include "plugin/store/secure_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include <openssl/crypto.h>

namespace secretshim::plugin {

Result<SecureBuffer> SecureBuffer::allocate(std::size_t size) {
    if (size == 0) return fail("secure buffer: cannot allocate 0 bytes");
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (size > SIZE_MAX - page) return fail("secure buffer: " + std::to_string(size) + " bytes is too large");
    const std::size_t mapped = (size + page - 1) / page * page;

    // A private mapping of its own rather than the heap: madvise and mlock
    // work on whole pages, and no other allocation shares them.
    void* addr = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) return failErrno("secure buffer: mmap of " + std::to_string(mapped) + " bytes");
    auto* bytes = static_cast<unsigned char*>(addr);

    // Core dumps go wherever core_pattern says, often to disk.
    if (::madvise(addr, mapped, MADV_DONTDUMP) != 0) {
        auto error = failErrno("secure buffer: madvise(MADV_DONTDUMP)");
        ::munmap(addr, mapped);
        return error;
    }
    // Linux 4.14+: a forked child sees zeros instead of a copy of the secret.
    // Older kernels answer EINVAL; MADV_DONTDUMP still holds there.
    (void)::madvise(addr, mapped, MADV_WIPEONFORK);

    bool locked = true;
    if (::mlock(addr, mapped) != 0) {
        // Unprivileged agents hit RLIMIT_MEMLOCK; the buffer still works,
        // it may just be swapped out.
        if (errno != EPERM && errno != ENOMEM && errno != EAGAIN) {
            auto error = failErrno("secure buffer: mlock");
            ::munmap(addr, mapped);
            return error;
        }
        locked = false;
    }
    return SecureBuffer(bytes, size, mapped, locked);
}

void SecureBuffer::wipe() {
    // OPENSSL_cleanse, not memset: the compiler may not drop it as a dead store.
    if (data_ != nullptr) OPENSSL_cleanse(data_, mapped_);
}

void SecureBuffer::reset() {
    if (data_ == nullptr) return;
    wipe();
    if (locked_) ::munlock(data_, mapped_);
    ::munmap(data_, mapped_);
    data_ = nullptr;
    size_ = 0;
    mapped_ = 0;
    locked_ = false;
}

}  // namespace secretshim::plugin
