// The agent's cluster mode: a container claims its task's assignment with
// the annotation io.secretshim.task, and gets it only if the task is bound
// to its identity (ClusterSource::grant); its secrets come from that
// assignment only (its own io.secretshim.secrets cannot widen it). A rotated secret
// reaches every running container of a task that holds it, atomically
// (TmpfsView::update), and the init gets the assignment's signal if one is set.
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "plugin/agent/agent.hpp"
#include "plugin/agent/log.hpp"
#include "plugin/agent/cluster_source.hpp"
#include "mountfs/secret_ref.hpp"
#include "platform/linux/id_map.hpp"
#include "platform/linux/userns_lock.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

using nlohmann::json;

void Agent::setClusterSource(ClusterSource* source) {
    cluster_ = source;
    source_ = source;
    ClusterSource::Callbacks callbacks;
    callbacks.runningTasks = [this] {
        std::set<std::string> running;
        for (const auto& [container, task] : clusterTasks_) running.insert(task);
        return running;
    };
    callbacks.secretChanged = [this](const std::string& name) { onClusterSecretChanged(name); };
    callbacks.taskChanged = [this](const std::string& task) { onClusterTaskChanged(task); };
    cluster_->start(std::move(callbacks));
}

void Agent::onClusterSecretChanged(const std::string& name) {
    // Decrypted once for all the containers that hold it (an X25519 + HKDF +
    // GCM open per container made 60 containers take ~36 ms here), on first
    // need, and wiped when this returns. One log line for all of them: a
    // line per container was a tenth of the agent's time (bench row 6).
    std::optional<Result<SecureBuffer>> value;
    const auto pushed = pushValue(name, [&]() -> Result<mountfs::Bytes> {
        value.emplace(cluster_->value(name));
        if (!*value) return propagate(*value);
        return (*value)->span();
    });
    std::vector<std::string> updated;  // their ids
    std::set<std::string> tasks;
    for (const auto& key : pushed.updated) {
        updated.push_back(key.id);
        const auto ct = clusterTasks_.find(key);
        if (ct == clusterTasks_.end()) continue;
        tasks.insert(ct->second);
        signalIfAsked(key, ct->second);
    }
    // One entry for all of them too, naming each container.
    const LogFields fields{.event = audit::update, .containers = updated, .secrets = name,
                           .task = tasks.size() == 1 ? *tasks.begin() : std::string()};
    if (updated.size() == 1) log("container " + quote(updated[0]) + ": secret " + name + " updated", fields);
    if (updated.size() > 1)
        log("secret " + name + " updated in " + std::to_string(updated.size()) + " containers", fields);
}


// A changed assignment reaches its running containers: references no
// longer granted are zeroed and removed (a single-file target's mount is
// detached), new ones appear (written then renamed under /run/secrets, or
// attached as a mount of their own). A task now bound to another identity
// is revoked whole from a container that is not that identity. A container
// re-adopted after an agent restart also gets every secret it holds
// rewritten once, at the first read of etcd: rotations made while the agent
// was down. An unassigned task is revoked whole from its running
// containers, as Docker swarm removes a secret from a service's tasks (the
// next start is refused); so is a task found gone at the first read after
// a disconnect or an agent restart.
void Agent::onClusterTaskChanged(const std::string& clusterTask) {
    const cluster::TaskAssignment* a = cluster_->assignment(clusterTask);
    for (const auto& [key, task] : clusterTasks_) {
        if (task != clusterTask) continue;
        const auto running = tasks_.find(key);
        if (running == tasks_.end()) continue;
        const bool resync = clusterResync_.erase(key) > 0;
        if (!a) {
            Task& t = running->second;
            std::vector<std::string> revoked;
            for (const auto& e : t.view->layout().entries) revoked.push_back(e.ref.target);
            if (revoked.empty()) continue;
            log("container " + quote(key.id) + ": task " + clusterTask + " was unassigned: its " +
                    std::to_string(revoked.size()) + " secret(s) revoked",
                {.containers = {key.id}, .identity = identityOf(t.record), .task = clusterTask});
            revokeTargets(t, revoked);
            keepAssigned(t, {}, {}, "");
            continue;
        }
        applyAssignment(key, running->second, clusterTask, *a, resync);
    }
}

void Agent::applyAssignment(const TaskKey& key, Task& t, const std::string& clusterTask,
                            const cluster::TaskAssignment& a, bool resync) {
    const std::string& id = key.id;  // what the log lines name
    const bool bound = t.record.identity && a.identity.matches(*t.record.identity);
    const std::string wanted = bound ? a.secrets : std::string();
    if (wanted == t.record.secrets && !resync) return;
    if (!bound)
        log("container " + quote(id) + ": task " + clusterTask + " is bound to " + a.identity.text() + " now, not to " +
                (t.record.identity ? t.record.identity->describe() : std::string("it")),
            {.level = LogLevel::warning, .containers = {id}, .identity = identityOf(t.record), .task = clusterTask,
             .rule = a.identity.text()});
    auto refs = bound ? mountfs::parseSecretRefs(a.secrets) : std::vector<mountfs::SecretRef>{};
    if (!refs) return;  // checked when the record was read
    // The view's files carry host ids: compare and add in those.
    std::vector<mountfs::SecretRef> mapped = *refs;
    if (auto ok = mapOwnersToHost(t.record.pid, mapped); !ok) {
        log("container " + quote(id) + ": the assignment of task " + clusterTask + " was not applied: " +
                ok.error().message,
            {.level = LogLevel::err, .containers = {id}, .identity = identityOf(t.record), .task = clusterTask});
        return;
    }
    std::vector<std::string> revoked;
    for (const auto& e : t.view->layout().entries)
        if (std::find(mapped.begin(), mapped.end(), e.ref) == mapped.end()) revoked.push_back(e.ref.target);
    bool changed = revokeTargets(t, revoked);
    if (resync) rewriteHeld(t, id);
    if (grantAdded(t, id, mapped)) changed = true;
    keepAssigned(t, *refs, mapped, wanted);
    if (changed) signalIfAsked(key, clusterTask);
}

// A re-adopted container: every secret it holds written again from etcd
// (rotations made while the agent was down).
void Agent::rewriteHeld(Task& t, const std::string& id) {
    const mountfs::ContainerHandle handle{t.exitWatch->native_handle(), "/"};
    const auto& entries = t.view->layout().entries;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        auto value = cluster_->value(entries[i].ref.source);
        auto ok = value ? t.view->update(i, value->span(), handle) : Result<void>(propagate(value));
        if (!ok)
            log("container " + quote(id) + ": " + entries[i].ref.target + " not brought up to date: " +
                    ok.error().message,
                {.level = LogLevel::err, .containers = {id}, .secrets = entries[i].ref.source,
                 .identity = identityOf(t.record), .task = t.record.task});
    }
    log("container " + quote(id) + ": re-adopted secrets brought up to date",
        {.event = audit::update, .containers = {id}, .secrets = joinNames(t.secrets), .identity = identityOf(t.record),
         .task = t.record.task});
}

// Adds the references of `mapped` the view does not hold yet, one log line
// each; whether any was added.
bool Agent::grantAdded(Task& t, const std::string& id, const std::vector<mountfs::SecretRef>& mapped) {
    bool granted = false;
    const std::size_t before = t.view->layout().entries.size();
    for (const auto& ref : mapped) {
        const auto& now = t.view->layout().entries;
        if (std::find_if(now.begin(), now.end(), [&](const auto& e) { return e.ref == ref; }) != now.end()) continue;
        auto ok = addLive(t, ref);
        log("container " + quote(id) + ": " + ref.target + (ok ? " granted" : " not granted: " + ok.error().message),
            {.level = ok ? LogLevel::info : LogLevel::err, .event = ok ? audit::add : std::string_view(),
             .containers = {id}, .secrets = ref.source, .identity = identityOf(t.record), .task = t.record.task});
        if (ok) granted = true;
    }
    metrics_.grantsAdded += t.view->layout().entries.size() - before;
    return granted;
}

Result<void> Agent::addLive(Task& t, const mountfs::SecretRef& ref) {
    // What a live attach creates in the container's tree (its placeholders)
    // is its root's, as at start.
    platform::HostIds owner{0, 0};
    if (t.view->addNeedsMount(ref)) {
        // The hook locked the container's mounts at start (a user namespace
        // of its own where it may hold CAP_SYS_ADMIN, as its spec said
        // then): a mount attached live could not be locked (the agent's unit
        // may not enter user namespaces), and a process that kept
        // CAP_SYS_ADMIN could remount it.
        if (t.record.locked)
            return fail("needs a restart of the task: the container has a user namespace of its own and may hold "
                        "CAP_SYS_ADMIN there, and a mount attached live could not be locked");
        auto root = platform::containerRootIds(t.record.pid);
        if (!root) return propagate(root);
        owner = *root;
    }
    auto value = cluster_->value(ref.source);
    if (!value) return propagate(value);
    const mountfs::ContainerHandle handle{t.exitWatch->native_handle(), "/"};
    return t.view->addEntry(ref, value->span(), handle, owner.uid, owner.gid);
}

// What the container holds now (in the assignment's own ids), for `task
// ls`, `secret rm` and a restart of the agent.
void Agent::keepAssigned(Task& t, const std::vector<mountfs::SecretRef>& refs,
                         const std::vector<mountfs::SecretRef>& mapped, const std::string& wanted) {
    t.secrets.clear();
    for (const auto& e : t.view->layout().entries)
        if (std::find(t.secrets.begin(), t.secrets.end(), e.ref.source) == t.secrets.end())
            t.secrets.push_back(e.ref.source);
    std::string specs;
    std::size_t found = 0;
    const auto& held = t.view->layout().entries;
    for (std::size_t i = 0; i < refs.size(); ++i)
        if (std::find_if(held.begin(), held.end(), [&](const auto& e) { return e.ref == mapped[i]; }) != held.end())
            specs += (specs.empty() ? "" : ";") + mountfs::formatSecretRef(refs[i]), ++found;
    // All of it: the assignment's own text, so the next event compares equal.
    t.record.secrets = found == refs.size() && held.size() == found ? wanted : specs;
    (void)records_.save(t.record);
}

void Agent::signalIfAsked(const TaskKey& key, const std::string& clusterTask) {
    const cluster::TaskAssignment* a = cluster_->assignment(clusterTask);
    const auto it = tasks_.find(key);
    if (!a || a->signal == 0 || it == tasks_.end()) return;
    if (::syscall(SYS_pidfd_send_signal, it->second.exitWatch->native_handle(), a->signal, nullptr, 0) != 0)
        log("container " + quote(key.id) + ": signal " + std::to_string(a->signal) + " not sent",
            {.level = LogLevel::warning, .containers = {key.id}, .task = clusterTask});
}

json Agent::clusterStatus() const { return cluster_->status(); }

}  // namespace secretshim::plugin
