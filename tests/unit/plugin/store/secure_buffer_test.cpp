#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include <doctest/doctest.h>

#include "plugin/store/secure_buffer.hpp"
#include "tests/support/skip.hpp"

using secretshim::plugin::SecureBuffer;

namespace {

// AddressSanitizer intercepts mlock and makes it a no-op returning 0.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMlockIsReal = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kMlockIsReal = false;
#else
constexpr bool kMlockIsReal = true;
#endif
#else
constexpr bool kMlockIsReal = true;
#endif

// The VmFlags of the /proc/self/smaps mapping that contains addr.
std::string vmFlags(const void* addr) {
    const auto target = reinterpret_cast<std::uintptr_t>(addr);
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        const auto dash = line.find('-');
        const auto space = line.find(' ');
        const bool isHeader = dash != std::string::npos && space != std::string::npos && dash < space &&
                              std::all_of(line.begin(), line.begin() + static_cast<long>(dash), ::isxdigit);
        if (isHeader) {
            const auto start = std::stoull(line.substr(0, dash), nullptr, 16);
            const auto end = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
            inside = target >= start && target < end;
        } else if (inside && line.rfind("VmFlags:", 0) == 0) {
            return line.substr(8) + " ";
        }
    }
    return "";
}

bool hasFlag(const std::string& flags, const std::string& flag) {
    return flags.find(" " + flag + " ") != std::string::npos;
}

bool allZero(const SecureBuffer& b) {
    return std::all_of(b.span().begin(), b.span().end(), [](unsigned char c) { return c == 0; });
}

}  // namespace

TEST_CASE("allocate gives a zero-filled buffer of the asked size") {
    auto buffer = SecureBuffer::allocate(100);
    REQUIRE(buffer.has_value());
    CHECK(buffer->size() == 100);
    CHECK(!buffer->empty());
    CHECK(buffer->data() != nullptr);
    CHECK(buffer->span().size() == 100);
    CHECK(std::as_const(*buffer).span().data() == buffer->data());
    CHECK(allZero(*buffer));
}

TEST_CASE("allocate refuses zero bytes") {
    auto buffer = SecureBuffer::allocate(0);
    REQUIRE(!buffer.has_value());
    CHECK(buffer.error().message == "secure buffer: cannot allocate 0 bytes");
}

TEST_CASE("wipe zeroes the contents and keeps the size") {
    auto buffer = SecureBuffer::allocate(5000);  // more than one page
    REQUIRE(buffer.has_value());
    std::fill(buffer->span().begin(), buffer->span().end(), 0xA5);
    buffer->wipe();
    CHECK(buffer->size() == 5000);
    CHECK(allZero(*buffer));
}

TEST_CASE("reset releases the mapping") {
    auto buffer = SecureBuffer::allocate(10);
    REQUIRE(buffer.has_value());
    const void* addr = buffer->data();
    buffer->reset();
    CHECK(buffer->empty());
    CHECK(buffer->data() == nullptr);
    CHECK(!buffer->locked());
    CHECK(vmFlags(addr).empty());  // no mapping there any more
}

TEST_CASE("moves transfer the mapping and leave the source empty") {
    auto first = SecureBuffer::allocate(32);
    REQUIRE(first.has_value());
    first->data()[0] = 42;
    unsigned char* addr = first->data();
    const bool locked = first->locked();

    SecureBuffer moved(std::move(*first));
    CHECK(moved.data() == addr);
    CHECK(moved.size() == 32);
    CHECK(moved.locked() == locked);
    CHECK(moved.data()[0] == 42);
    CHECK(first->data() == nullptr);
    CHECK(first->size() == 0);
    CHECK(!first->locked());

    auto other = SecureBuffer::allocate(8);
    REQUIRE(other.has_value());
    *other = std::move(moved);
    CHECK(other->data() == addr);
    CHECK(other->size() == 32);
    CHECK(moved.empty());

    SecureBuffer empty;
    CHECK(empty.empty());
    CHECK(empty.span().empty());
}

TEST_CASE("the mapping is excluded from core dumps") {
    auto buffer = SecureBuffer::allocate(64);
    REQUIRE(buffer.has_value());
    const std::string flags = vmFlags(buffer->data());
    REQUIRE(!flags.empty());
    CHECK(hasFlag(flags, "dd"));
    if (buffer->locked() && kMlockIsReal) CHECK(hasFlag(flags, "lo"));
}

TEST_CASE("the mapping is locked when running as root" *
          doctest::skip(secretshim::testing::skipUnless(::geteuid() == 0,
                                                        "not root: RLIMIT_MEMLOCK decides whether it is locked"))) {
    auto buffer = SecureBuffer::allocate(64);
    REQUIRE(buffer.has_value());
    CHECK(buffer->locked());
}

TEST_CASE("a forked child sees zeros, not the contents") {
    auto buffer = SecureBuffer::allocate(64);
    REQUIRE(buffer.has_value());
    std::fill(buffer->span().begin(), buffer->span().end(), 0x5A);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(allZero(*buffer) ? 0 : 1);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(buffer->data()[0] == 0x5A);  // the parent keeps its copy
}
