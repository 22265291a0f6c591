// plugin/store/secure_buffer.hpp for Windows: the pages come from
// VirtualAlloc (no heap neighbours), are locked into the working set with
// VirtualLock where the quota allows, and are zeroed with SecureZeroMemory
// (never dropped as a dead store) before they are released.
#include "plugin/store/secure_buffer.hpp"

#include <windows.h>

#include <cstdint>
#include <string>

#include "platform/windows/win_error.hpp"

namespace secretshim::plugin {

Result<SecureBuffer> SecureBuffer::allocate(std::size_t size) {
    if (size == 0) return fail("secure buffer: cannot allocate 0 bytes");
    SYSTEM_INFO info{};
    ::GetSystemInfo(&info);
    const std::size_t page = info.dwPageSize;
    if (size > SIZE_MAX - page) return fail("secure buffer: " + std::to_string(size) + " bytes is too large");
    const std::size_t mapped = (size + page - 1) / page * page;
    void* addr = ::VirtualAlloc(nullptr, mapped, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (addr == nullptr)
        return platform::failLastError("secure buffer: VirtualAlloc of " + std::to_string(mapped) + " bytes");
    // A failed lock (the working-set quota) is not an error: the buffer
    // works, it may only be paged out.
    const bool locked = ::VirtualLock(addr, mapped) != 0;
    return SecureBuffer(static_cast<unsigned char*>(addr), size, mapped, locked);
}

void SecureBuffer::wipe() {
    if (data_ != nullptr) ::SecureZeroMemory(data_, mapped_);
}

void SecureBuffer::reset() {
    if (data_ == nullptr) return;
    wipe();
    if (locked_) ::VirtualUnlock(data_, mapped_);
    ::VirtualFree(data_, 0, MEM_RELEASE);
    data_ = nullptr;
    size_ = 0;
    mapped_ = 0;
    locked_ = false;
}

}  // namespace secretshim::plugin
