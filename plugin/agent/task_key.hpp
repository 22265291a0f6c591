// Which container a running task is. A container id is unique only within
// its runtime's state: two containerd namespaces, or two runc --root
// directories, may run containers with the same id at once. The bundle path
// tells them apart: the runtime gives it to the hook at createRuntime and
// again at poststop, and it lives in that runtime's own per-namespace state
// (containerd: /run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>;
// Podman and CRI-O: .../overlay-containers/<id>/userdata under their storage
// root). So a task is keyed by (id, bundle).
//
// The hook's integration is left out of the key: it says who registered the
// hook, not where the container lives (the bundle already differs between
// runtimes), and a poststop from a hook registered otherwise (a hooks.d file
// replaced by an upgrade while the container ran) must still find its task.
// Two containers with the same id and the same bundle directory (two runc
// roots started from one bundle) are one container as far as the agent can
// tell: the second is refused its secrets, and its poststop (runc runs it
// after a failed createRuntime) releases the first, as any poststop naming
// that key would. No runtime lays bundles out so; an admin running runc by
// hand must not either.
//
// An empty bundle is unknown: a task created by a hook from before bundles
// were sent, or re-adopted from a record of that time.
#pragma once

#include <compare>
#include <string>

namespace secretshim::plugin {

struct TaskKey {
    std::string id;      // as the runtime names the container: what logs and `task ls` show
    std::string bundle;  // "" when unknown

    auto operator<=>(const TaskKey&) const = default;

    // A stable name for the task, unique per key: 64 hex digits, so safe as
    // a file name and as a systemd FDNAME ([A-Za-z0-9._-], at most 255
    // characters). See task_key.cpp.
    std::string storeName() const;
};

}  // namespace secretshim::plugin
