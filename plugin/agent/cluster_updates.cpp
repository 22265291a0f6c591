// The agent's cluster mode: a container is tied to its task's assignment by
// the annotation io.secretshim.task; its secrets come from that assignment
// only (its own io.secretshim.secrets cannot widen it). A rotated secret
// reaches every running container of a task that holds it, atomically
// (TmpfsView::update), and the init gets the assignment's signal if one is set.
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <set>

#include "plugin/agent/agent.hpp"
#include "plugin/agent/cluster_source.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

using nlohmann::json;

namespace {

void log(const std::string& line) { std::fprintf(stderr, "secretshimd: %s\n", line.c_str()); }

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
    for (auto& [id, task] : tasks_) {
        const auto ct = clusterTasks_.find(id);
        if (ct == clusterTasks_.end()) continue;
        const auto& entries = task.view->layout().entries;
        bool touched = false;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].ref.source != name) continue;
            auto value = cluster_->value(name);
            if (!value) {
                log("container " + quote(id) + ": secret " + name + " not updated: " + value.error().message);
                break;
            }
            const mountfs::ContainerHandle handle{task.exitWatch->native_handle(), "/"};
            if (auto ok = task.view->update(i, value->span(), handle); !ok) {
                log("container " + quote(id) + ": secret " + name + " not updated: " + ok.error().message);
                continue;
            }
            touched = true;
        }
        if (!touched) continue;
        log("container " + quote(id) + ": secret " + name + " updated");
        signalIfAsked(id, ct->second);
    }
}

void Agent::onClusterTaskChanged(const std::string& clusterTask) {
    const cluster::TaskAssignment* a = cluster_->assignment(clusterTask);
    for (const auto& [id, task] : clusterTasks_) {
        if (task != clusterTask) continue;
        const auto running = tasks_.find(id);
        if (running == tasks_.end()) continue;
        if (!a) {
            log("container " + quote(id) + ": task " + clusterTask +
                " was unassigned; the running container keeps its secrets until it stops");
        } else if (a->secrets != running->second.record.secrets) {
            // Not done yet: adding or removing files of a running view.
            log("container " + quote(id) + ": task " + clusterTask +
                "'s grants changed; they apply when the container next starts");
        }
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
