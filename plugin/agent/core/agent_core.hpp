// The agent core both platforms' agents are built on: it serves every op
// whose meaning does not depend on the platform — release, the admin verbs
// on the local store (secret.create/rotate/ls/inspect/rm/grant/revoke), task.ls and
// status — so that each is decided, worded and logged once. What differs is
// left to the agent that derives from it (plugin/agent/agent.hpp on Linux,
// plugin/windows/win_agent.hpp): how a request and a secret's value travel
// (a unix socket and a sealed memfd; a named pipe and secret.data messages),
// which view a task gets (a detached tmpfs; a directory of links), how a
// task's end is noticed (a pidfd; the hook's release), and create itself
// (a two-step exchange with mount fds on Linux, one request on Windows).
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"
#include "plugin/agent/core/log_fields.hpp"
#include "plugin/agent/core/secret_catalog.hpp"
#include "plugin/protocol/messages.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

// secret.create's (and secret.rotate's) value, from wherever the platform's
// transport carries it.
using ValueReader = std::function<Result<SecureBuffer>(const SecretCreateRequest& request)>;

class AgentCore {
public:
    virtual ~AgentCore() = default;
    AgentCore(const AgentCore&) = delete;
    AgentCore& operator=(const AgentCore&) = delete;

    // One request's reply; an op the core does not serve goes to
    // platformOp(). Never throws.
    nlohmann::json handle(const nlohmann::json& request, const ValueReader& readValue);

protected:
    // `catalog`: the local store, or null on a node whose secrets come from
    // etcd (the admin verbs are then refused). Both must outlive the core.
    AgentCore(SecretCatalog* catalog, LogFn log) : catalog_(catalog), log_(std::move(log)) {}
    void setCatalog(SecretCatalog* catalog) { catalog_ = catalog; }

    // The platform's part. Each returns a reply's body (the core adds "ok").
    virtual Result<nlohmann::json> release(const ReleaseRequest& request) = 0;
    virtual Result<nlohmann::json> listTasks(const TaskListRequest& request) = 0;
    virtual Result<nlohmann::json> status() = 0;
    // An op the core does not serve: by default, refused as unknown.
    virtual Result<nlohmann::json> platformOp(const std::string& op, const nlohmann::json& request);

    // Called with exclusive() held. The ids of the running tasks whose view
    // holds secret `name`.
    virtual std::vector<std::string> tasksHolding(const std::string& name) const = 0;
    // A rule of secret `name` was revoked: the running tasks whose identity
    // no rule allows any more lose it now (where grants are supported).
    virtual void grantRevoked(const std::string& /*name*/) {}
    // Called with exclusive() held. Secret `before` is about to get a value
    // of `size` bytes: refuses (one line) what the running tasks holding it
    // could not take (the platform's limits), before anything changes.
    virtual Result<void> checkRotation(const SecretMeta& /*before*/, std::size_t /*size*/) const { return {}; }
    // Called with exclusive() held, once the store has the new value: the
    // running tasks holding secret `before` get it atomically (one log line
    // for each that does not). How many got it, and how many did not.
    struct Pushed {
        std::size_t updated = 0;
        std::size_t failed = 0;
    };
    virtual Pushed secretRotated(const SecretMeta& /*before*/, mountfs::Bytes /*value*/) { return {}; }
    // Held while the core reads or changes the catalog and asks tasksHolding(),
    // so that a secret in use cannot be removed between the two: where
    // connections are served on threads (Windows), the lock over the tasks
    // and the store; where one thread serves all (Linux), nothing.
    virtual std::unique_lock<std::mutex> exclusive() { return {}; }

private:
    Result<nlohmann::json> secretVerb(const std::string& op, const nlohmann::json& request,
                                      const ValueReader& readValue);
    Result<nlohmann::json> createSecret(const nlohmann::json& request, const ValueReader& readValue);
    Result<nlohmann::json> rotateSecret(const SecretCreateRequest& request, const ValueReader& readValue);
    Result<nlohmann::json> changeGrant(const nlohmann::json& request);
    Result<nlohmann::json> removeSecret(const SecretNameRequest& request);
    Result<nlohmann::json> listSecrets(const SecretNameRequest& request);

    SecretCatalog* catalog_;
    LogFn log_;
};

}  // namespace secretshim::plugin
