// A secret's new value reaching the running containers that hold it, in
// both modes: `secret rotate` on the local store (checkRotation() before the
// store changes, secretRotated() after) and a rotation in etcd
// (onClusterSecretChanged(), cluster_updates.cpp). Both go through
// pushValue(), and so through the view's one live-update path
// (TmpfsView::update: a new file renamed over the old one under
// /run/secrets, a single-file target's new mount put beneath the old one):
// a reader sees the old value or the new one, never a torn one.
#include <algorithm>
#include <optional>

#include "platform/linux/features.hpp"
#include "plugin/agent/agent.hpp"
#include "plugin/agent/local_source.hpp"
#include "plugin/agent/log.hpp"

namespace secretshim::plugin {

namespace {

std::size_t entriesOf(const platform::TmpfsView& view, const std::string& name) {
    const auto& entries = view.layout().entries;
    return static_cast<std::size_t>(
        std::count_if(entries.begin(), entries.end(), [&](const auto& e) { return e.ref.source == name; }));
}

// What a task holds once its `n` files of a secret hold `newSize` bytes
// each instead of `oldSize`.
std::size_t rotatedBytes(std::size_t held, std::size_t n, std::size_t oldSize, std::size_t newSize) {
    return held - std::min(held, n * oldSize) + n * newSize;
}

}  // namespace

Agent::PushResult Agent::pushValue(const std::string& name, const ValueFn& value, const TaskKey* only) {
    PushResult result;
    std::optional<Result<mountfs::Bytes>> got;  // asked once, on first need
    for (auto& [key, task] : tasks_) {
        if (only && key != *only) continue;
        const auto& entries = task.view->layout().entries;
        bool touched = false, failed = false;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].ref.source != name) continue;
            if (!got) got.emplace(value());
            if (!*got) {
                log("container " + quote(key.id) + ": secret " + name + " not updated: " + got->error().message,
                    {.level = LogLevel::err, .containers = {key.id}, .secrets = name});
                failed = true;
                break;
            }
            const mountfs::ContainerHandle handle{task.exitWatch->native_handle(), "/"};
            if (auto ok = task.view->update(i, **got, handle); !ok) {
                log("container " + quote(key.id) + ": secret " + name + " not updated: " + ok.error().message,
                    {.level = LogLevel::err, .containers = {key.id}, .secrets = name});
                failed = true;
                continue;
            }
            touched = true;
            ++metrics_.rotations;
        }
        if (touched) result.updated.push_back(key);
        if (failed) ++result.failed;
    }
    return result;
}

// Refused before the store changes: what a running container holding the
// secret could not take. The value's own size (max_payload) was checked as
// it was read; here the container's and the node's limits
// (max_container_bytes, max_node_bytes) with the new size in place of the
// old, and a single-file target on a kernel that cannot rebind it.
Result<void> Agent::checkRotation(const SecretMeta& before, std::size_t size) const {
    const auto& features = platform::kernelFeatures();
    std::size_t held = heldBytes(), next = held;
    for (const auto& [key, task] : tasks_) {
        const std::size_t n = entriesOf(*task.view, before.name);
        if (n == 0) continue;
        for (const auto& e : task.view->layout().entries)
            if (e.ref.source == before.name && !e.inDirectory && !(features.moveMountBeneath && features.detachedClone))
                return fail("container " + quote(key.id) + " holds it at " + e.ref.target +
                            ", and this kernel cannot rebind a single-file mount (restart the container instead)");
        const std::size_t oldBytes = task.record.bytes;
        const std::size_t bytes = rotatedBytes(oldBytes, n, before.size, size);
        if (bytes > config_.maxContainerBytes)
            return fail("container " + quote(key.id) + " would hold " + std::to_string(bytes) +
                        " bytes of secrets, over the limit of " + std::to_string(config_.maxContainerBytes) +
                        " (max_container_bytes)");
        next = next - std::min(next, oldBytes) + bytes;
    }
    if (next > held && next > config_.maxNodeBytes)
        return fail("the node's running containers would hold " + std::to_string(next) +
                    " bytes of secrets, over its limit of " + std::to_string(config_.maxNodeBytes) +
                    " (max_node_bytes)");
    return {};
}

// The store has the new value: every running container holding the secret
// gets it, and counts its new size against the limits from now on.
AgentCore::Pushed Agent::secretRotated(const SecretMeta& before, mountfs::Bytes value) {
    rotatedAt_[before.name] = ++rotations_;
    const auto pushed = pushValue(before.name, [&]() -> Result<mountfs::Bytes> { return value; });
    for (const auto& key : pushed.updated) {
        Task& task = tasks_.at(key);
        const std::size_t bytes = rotatedBytes(task.record.bytes, entriesOf(*task.view, before.name), before.size,
                                               value.size());
        if (bytes == task.record.bytes) continue;
        task.record.bytes = bytes;
        (void)records_.save(task.record);
    }
    return {pushed.updated.size(), pushed.failed};
}

// The hook attaches a view between two requests, and a rotation may be
// served in between: the view then holds the value before it.
void Agent::catchUpRotations(const TaskKey& key, std::uint64_t builtAt) {
    if (!local_ || rotations_ == builtAt) return;
    const auto it = tasks_.find(key);
    if (it == tasks_.end()) return;
    const std::vector<std::string> names = it->second.secrets;
    for (const auto& name : names) {
        const auto at = rotatedAt_.find(name);
        if (at == rotatedAt_.end() || at->second <= builtAt) continue;
        std::optional<Result<SecureBuffer>> value;
        const auto pushed = pushValue(
            name,
            [&]() -> Result<mountfs::Bytes> {
                value.emplace(local_->value(name));
                if (!*value) return propagate(*value);
                return (*value)->span();
            },
            &key);
        if (!pushed.updated.empty())
            log("container " + quote(key.id) + ": secret " + name + " rotated while it started: updated",
                {.event = audit::update, .containers = {key.id}, .secrets = name});
    }
}

}  // namespace secretshim::plugin
