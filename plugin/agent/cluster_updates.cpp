// The agent's cluster mode: a container is tied to its task's assignment by
// the annotation io.secretshim.task; its secrets come from that assignment
// only (its own io.secretshim.secrets cannot widen it). A rotated secret
// reaches every running container of a task that holds it, atomically
// (TmpfsView::update), and the init gets the assignment's signal if one is set.
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <optional>
#include <set>

#include "plugin/agent/agent.hpp"
#include "plugin/agent/cluster_source.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

using nlohmann::json;

namespace {

void log(const std::string& line) { std::fprintf(stderr, "secretshimd: %s\n", line.c_str()); }

std::string toOctal(std::uint32_t mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%o", mode & 07777);
    return buf;
}

}  // namespace

void Agent::setClusterSource(ClusterSource* source) {
    cluster_ = source;
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

Result<void> Agent::clusterGrant(const json& request, PendingTask& task, std::map<std::string, SecureBuffer>& values) {
    const std::string clusterTask = stringField(request, "task");
    if (!cluster_) {
        if (!clusterTask.empty())
            return fail("the annotation " + std::string(kTaskAnnotation) + " needs an agent with source: etcd");
        return {};
    }
    if (clusterTask.empty())
        return fail("this node takes secrets from the cluster: the container needs the annotation " +
                    std::string(kTaskAnnotation));
    auto grant = cluster_->grant(clusterTask);
    if (!grant) return tl::unexpected(grant.error());
    task.record.secrets = grant->specs;  // the assignment, not the container's annotation
    task.clusterTask = clusterTask;
    values = std::move(grant->values);
    return {};
}

void Agent::onClusterSecretChanged(const std::string& name) {
    // Decrypted once for all the containers that hold it (an X25519 + HKDF +
    // GCM open per container made 60 containers take ~36 ms here), on first
    // need, and wiped when this returns. One log line for all of them: a
    // line per container was a tenth of the agent's time (bench row 6).
    std::optional<Result<SecureBuffer>> value;
    std::size_t updated = 0;
    std::string one;
    for (auto& [id, task] : tasks_) {
        const auto ct = clusterTasks_.find(id);
        if (ct == clusterTasks_.end()) continue;
        const auto& entries = task.view->layout().entries;
        bool touched = false;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].ref.source != name) continue;
            if (!value) value.emplace(cluster_->value(name));
            if (!*value) {
                log("container " + quote(id) + ": secret " + name + " not updated: " + value->error().message);
                break;
            }
            const mountfs::ContainerHandle handle{task.exitWatch->native_handle(), "/"};
            if (auto ok = task.view->update(i, (*value)->span(), handle); !ok) {
                log("container " + quote(id) + ": secret " + name + " not updated: " + ok.error().message);
                continue;
            }
            touched = true;
        }
        if (!touched) continue;
        if (++updated == 1) one = id;
        signalIfAsked(id, ct->second);
    }
    if (updated == 1) log("container " + quote(one) + ": secret " + name + " updated");
    if (updated > 1) log("secret " + name + " updated in " + std::to_string(updated) + " containers");
}

// A changed assignment reaches its running containers: references no
// longer granted are zeroed and removed, new ones under /run/secrets
// appear. An unassigned task's containers keep their secrets until they
// stop (the next start is refused).
void Agent::onClusterTaskChanged(const std::string& clusterTask) {
    const cluster::TaskAssignment* a = cluster_->assignment(clusterTask);
    for (const auto& [id, task] : clusterTasks_) {
        if (task != clusterTask) continue;
        const auto running = tasks_.find(id);
        if (running == tasks_.end()) continue;
        Task& t = running->second;
        if (!a) {
            log("container " + quote(id) + ": task " + clusterTask +
                " was unassigned; the running container keeps its secrets until it stops");
            continue;
        }
        if (a->secrets == t.record.secrets) continue;
        auto refs = mountfs::parseSecretRefs(a->secrets);
        if (!refs) continue;  // checked when the record was read
        bool changed = false;
        const auto& entries = t.view->layout().entries;
        for (std::size_t i = entries.size(); i-- > 0;) {
            if (std::find(refs->begin(), refs->end(), entries[i].ref) != refs->end()) continue;
            const std::string target = entries[i].ref.target;
            if (auto ok = t.view->removeEntry(i); !ok)
                log("container " + quote(id) + ": " + target + " not revoked: " + ok.error().message);
            else
                log("container " + quote(id) + ": " + target + " revoked"), changed = true;
        }
        for (const auto& ref : *refs) {
            const auto& now = t.view->layout().entries;
            if (std::find_if(now.begin(), now.end(), [&](const auto& e) { return e.ref == ref; }) != now.end()) continue;
            auto value = cluster_->value(ref.source);
            auto ok = value ? t.view->addEntry(ref, value->span()) : Result<void>(tl::unexpected(value.error()));
            if (!ok)
                log("container " + quote(id) + ": " + ref.target + " not granted: " + ok.error().message);
            else
                log("container " + quote(id) + ": " + ref.target + " granted"), changed = true;
        }
        // What the container holds now, for `task ls`, `secret rm` and a restart.
        t.secrets.clear();
        for (const auto& e : t.view->layout().entries)
            if (std::find(t.secrets.begin(), t.secrets.end(), e.ref.source) == t.secrets.end())
                t.secrets.push_back(e.ref.source);
        std::string specs;
        for (const auto& e : t.view->layout().entries)
            specs += (specs.empty() ? "" : ";") + ("source=" + e.ref.source + ",target=" + e.ref.target +
                                                   ",uid=" + std::to_string(e.ref.uid) + ",gid=" +
                                                   std::to_string(e.ref.gid) + ",mode=0" + toOctal(e.ref.mode));
        t.record.secrets = specs;
        (void)records_.save(t.record);
        if (changed) signalIfAsked(id, clusterTask);
    }
}

void Agent::signalIfAsked(const std::string& containerId, const std::string& clusterTask) {
    const cluster::TaskAssignment* a = cluster_->assignment(clusterTask);
    const auto it = tasks_.find(containerId);
    if (!a || a->signal == 0 || it == tasks_.end()) return;
    if (::syscall(SYS_pidfd_send_signal, it->second.exitWatch->native_handle(), a->signal, nullptr, 0) != 0)
        log("container " + quote(containerId) + ": signal " + std::to_string(a->signal) + " not sent");
}

json Agent::clusterStatus() const { return cluster_->status(); }

}  // namespace secretshim::plugin
