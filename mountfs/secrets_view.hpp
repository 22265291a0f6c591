// The interface every platform implements for one task's secrets view.
// mountfs/ declares it; platform/linux or platform/windows defines
// buildView(), and the build links exactly one of them.
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

class SecretsView {
public:
    virtual ~SecretsView() = default;
    SecretsView() = default;
    SecretsView(const SecretsView&) = delete;
    SecretsView& operator=(const SecretsView&) = delete;

    virtual const ViewLayout& layout() const = 0;
    // Makes the view visible at its targets inside the container.
    virtual Result<void> attach(const ContainerHandle& container) = 0;
    // Replaces entry `index`'s content atomically: readers see the old or
    // the new value, never a mix.
    virtual Result<void> update(std::size_t index, Bytes payload,
                                const ContainerHandle& container) = 0;
    // Overwrites every file, removes it and releases the view. Idempotent.
    virtual Result<void> flush() = 0;
};

// Builds a view holding payloads[i] for layout.entries[i].
Result<std::unique_ptr<SecretsView>> buildView(ViewLayout layout,
                                               const std::vector<Bytes>& payloads,
                                               const ViewOptions& options = {});

}  // namespace secretshim::mountfs
