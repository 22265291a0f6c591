// What every platform's secrets view is built from and where it goes: the
// payloads, produced one at a time, and the container. The views themselves
// (platform/linux/tmpfs_view.hpp, platform/windows/symlink_view.hpp) have no
// common base: each agent holds its own kind, and what they share is the
// layout (view_layout.hpp).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mountfs/view_layout.hpp"

namespace secretshim::mountfs {

using Bytes = std::span<const unsigned char>;

// Where a view goes. Linux: a pidfd of the container's init and the rootfs
// path as seen inside its mount namespace ("/" once the container runs).
// Windows: the container's filesystem root, pidfd unused.
struct ContainerHandle {
    int pidfd = -1;
    std::string rootfs;
};

struct ViewOptions {
    std::size_t maxPayload = kDefaultMaxPayload;
};

// Receives one payload in pieces, in order (PayloadSource::produce).
class PayloadSink {
public:
    virtual ~PayloadSink() = default;
    virtual Result<void> write(Bytes piece) = 0;
};

// A view's payloads, one per layout entry, produced one at a time straight
// into the view's files: the agent decrypts each secret into its file
// rather than into a copy of them all. Every size is known before anything
// is produced (the view is sized, and the limits checked, first).
class PayloadSource {
public:
    virtual ~PayloadSource() = default;
    virtual std::size_t count() const = 0;
    virtual std::size_t size(std::size_t index) const = 0;
    // Hands payload `index`, exactly size(index) bytes, to `sink`. It may
    // fail after some pieces were written (a record that fails its tag
    // check at the end): the caller wipes whatever it received.
    virtual Result<void> produce(std::size_t index, PayloadSink& sink) const = 0;
    // Another source of the same payloads that a second thread may use at
    // the same time as this one, or null (the view is then filled on one).
    virtual std::unique_ptr<PayloadSource> concurrentCopy() const { return nullptr; }
};

// Payloads already in memory: each is one piece.
class SpanPayloads final : public PayloadSource {
public:
    explicit SpanPayloads(const std::vector<Bytes>& payloads) : payloads_(payloads) {}
    std::size_t count() const override { return payloads_.size(); }
    std::size_t size(std::size_t index) const override { return payloads_[index].size(); }
    Result<void> produce(std::size_t index, PayloadSink& sink) const override {
        return sink.write(payloads_[index]);
    }
    std::unique_ptr<PayloadSource> concurrentCopy() const override {
        return std::make_unique<SpanPayloads>(payloads_);
    }

private:
    const std::vector<Bytes>& payloads_;
};

}  // namespace secretshim::mountfs
