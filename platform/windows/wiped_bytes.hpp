// A private copy of a secret's bytes, kept only until the view is attached,
// zeroed with SecureZeroMemory (never optimized away) when released.
#pragma once

#include <windows.h>

#include <utility>
#include <vector>

#include "mountfs/secrets_view.hpp"

namespace secretshim::platform {

class WipedBytes {
public:
    WipedBytes() = default;
    explicit WipedBytes(mountfs::Bytes data) : bytes_(data.begin(), data.end()) {}
    WipedBytes(WipedBytes&& other) noexcept : bytes_(std::move(other.bytes_)) { other.bytes_.clear(); }
    WipedBytes& operator=(WipedBytes&& other) noexcept {
        wipe();
        bytes_ = std::move(other.bytes_);
        other.bytes_.clear();
        return *this;
    }
    WipedBytes(const WipedBytes&) = delete;
    WipedBytes& operator=(const WipedBytes&) = delete;
    ~WipedBytes() { wipe(); }

    mountfs::Bytes bytes() const { return mountfs::Bytes(bytes_.data(), bytes_.size()); }
    void wipe() {
        if (!bytes_.empty()) ::SecureZeroMemory(bytes_.data(), bytes_.size());
        bytes_.clear();
    }

private:
    std::vector<unsigned char> bytes_;
};

}  // namespace secretshim::platform
