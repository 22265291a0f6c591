#include "plugin/agent/core/agent_core.hpp"

namespace secretshim::plugin {

using nlohmann::json;

namespace {

Result<std::vector<GrantRule>> parseRules(const std::vector<std::string>& texts) {
    std::vector<GrantRule> rules;
    for (const auto& text : texts) {
        auto rule = GrantRule::parse(text);
        if (!rule) return propagate(rule);
        rules.push_back(std::move(*rule));
    }
    return rules;
}

// `secret rm`'s refusal names the first holder: an admin can look it up.
std::string inUse(const std::string& name, const std::vector<std::string>& holders) {
    std::string line = "secret " + quote(name) + " is in use by a running task (" + quote(holders.front());
    if (holders.size() > 1) line += " and " + std::to_string(holders.size() - 1) + " more";
    return line + ")";
}

// A created secret's rules for its audit entry, "; " between them.
std::string ruleList(const std::vector<GrantRule>& rules) {
    std::string out;
    for (const auto& r : rules) out += (out.empty() ? "" : "; ") + r.text();
    return out;
}

constexpr std::string_view kNoGrants = "grant rules are not supported on this node's store (Windows)";

}  // namespace

json AgentCore::handle(const json& request, const ValueReader& readValue) {
    const std::string op = opOf(request);
    Result<json> reply = tl::unexpected(Error{});
    if (op == op::release) {
        auto parsed = ReleaseRequest::fromJson(request);
        reply = parsed ? release(*parsed) : propagate(parsed);
    } else if (op.rfind("secret.", 0) == 0) {
        reply = secretVerb(op, request, readValue);
    } else if (op == op::taskLs) {
        auto parsed = TaskListRequest::fromJson(request);
        reply = parsed ? listTasks(*parsed) : propagate(parsed);
    } else if (op == op::status) {
        reply = status();
    } else {
        reply = platformOp(op, request);
    }
    if (!reply) return errorReply(reply.error().message);
    return okReply(std::move(*reply));
}

Result<json> AgentCore::platformOp(const std::string& op, const json&) { return tl::unexpected(unknownOp(op)); }

Result<json> AgentCore::secretVerb(const std::string& op, const json& request, const ValueReader& readValue) {
    // On a cluster node secrets are etcd's: a local one would reach nobody.
    if (!catalog_)
        return fail("this node takes its secrets from etcd (source: etcd): manage them with secretshimctl "
                    "--cluster-config FILE");
    if (op == op::secretCreate || op == op::secretRotate) return createSecret(request, readValue);
    if (op == op::secretGrant || op == op::secretRevoke) return changeGrant(request);
    if (op != op::secretLs && op != op::secretInspect && op != op::secretRm) return tl::unexpected(unknownOp(op));
    auto asked = SecretNameRequest::fromJson(request);
    if (!asked) return propagate(asked);
    return op == op::secretRm ? removeSecret(*asked) : listSecrets(*asked);
}

Result<json> AgentCore::createSecret(const json& request, const ValueReader& readValue) {
    auto create = SecretCreateRequest::fromJson(request);
    if (!create) return propagate(create);
    if (create->rotate) return rotateSecret(*create, readValue);
    if (auto ok = checkLabels(create->labels); !ok) return propagate(ok, "secret " + quote(create->name));
    if (!create->grants.empty() && !catalog_->supportsGrants()) return fail(std::string(kNoGrants));
    auto rules = parseRules(create->grants);
    if (!rules) return propagate(rules);
    // Read before the lock: the value may come in many messages.
    auto value = readValue(*create);
    if (!value) return propagate(value);
    auto lock = exclusive();
    auto meta = catalog_->create(create->name, value->span(), *rules, create->labels);
    if (!meta) return propagate(meta);
    log_("secret " + quote(create->name) + " created (" + std::to_string(meta->size) + " bytes, " +
             std::to_string(rules->size()) + " grant(s))",
         {.event = audit::create, .secrets = create->name, .rule = ruleList(*rules)});
    return json{{"id", meta->id}};
}

// Every check that can refuse comes before the store changes: the value's
// size (max_payload, as the value is read), the secret's existence, and
// what the running tasks that hold it can take. Then the record is
// replaced, and only then do the running tasks get the new value: the
// store is what a task started later reads.
Result<json> AgentCore::rotateSecret(const SecretCreateRequest& request, const ValueReader& readValue) {
    if (!request.grants.empty() || !request.labels.empty())
        return fail("secret " + quote(request.name) + ": a rotation keeps the grants and labels it has");
    auto value = readValue(request);
    if (!value) return propagate(value);
    auto lock = exclusive();
    auto before = catalog_->inspect(request.name);
    if (!before) return propagate(before);
    const std::string& name = before->name;
    if (auto ok = checkRotation(*before, value->size()); !ok)
        return propagate(ok, "secret " + quote(name) + " not rotated");
    auto meta = catalog_->rotate(name, value->span());
    if (!meta) return propagate(meta);
    const Pushed pushed = secretRotated(*before, value->span());
    log_("secret " + quote(name) + " rotated to version " + std::to_string(meta->version) + " (" +
             std::to_string(meta->size) + " bytes): " + std::to_string(pushed.updated) +
             " running container(s) updated" +
             (pushed.failed ? ", " + std::to_string(pushed.failed) + " not updated" : ""),
         {.level = pushed.failed ? LogLevel::err : LogLevel::info, .event = audit::rotate, .secrets = name});
    return json{{"id", meta->id}, {"version", meta->version}, {"updated", pushed.updated}, {"failed", pushed.failed}};
}

Result<json> AgentCore::changeGrant(const json& request) {
    if (!catalog_->supportsGrants()) return fail(std::string(kNoGrants));
    auto change = SecretGrantRequest::fromJson(request);
    if (!change) return propagate(change);
    auto rule = GrantRule::parse(change->rule);
    if (!rule) return propagate(rule);
    auto lock = exclusive();
    auto ok = change->revoke ? catalog_->revokeGrant(change->name, *rule) : catalog_->addGrant(change->name, *rule);
    if (!ok) return propagate(ok);
    log_("secret " + quote(change->name) + (change->revoke ? ": grant revoked: " : " granted to ") + rule->text(),
         {.event = change->revoke ? audit::ungrant : audit::grant, .secrets = change->name, .rule = rule->text()});
    if (change->revoke) grantRevoked(change->name);
    return json::object();
}

Result<json> AgentCore::removeSecret(const SecretNameRequest& request) {
    auto lock = exclusive();
    if (const auto users = tasksHolding(request.name); !users.empty()) return fail(inUse(request.name, users));
    if (auto ok = catalog_->remove(request.name); !ok) return propagate(ok);
    log_("secret " + quote(request.name) + " removed", {.event = audit::remove, .secrets = request.name});
    return json::object();
}

Result<json> AgentCore::listSecrets(const SecretNameRequest& request) {
    const bool inspect = request.op == op::secretInspect;
    auto lock = exclusive();
    auto metas = catalog_->list();
    if (!metas) return propagate(metas);
    SecretListReply list;
    for (const auto& m : *metas) {
        if (inspect && !catalog_->sameName(m.name, request.name)) continue;
        list.secrets.push_back({m.name, m.id, m.size, m.created, catalog_->ruleTexts(m.name), tasksHolding(m.name),
                                m.version, m.updated, m.labels});
    }
    if (inspect && list.secrets.empty()) return fail("secret " + quote(request.name) + " not found");
    return list.toJson();
}

}  // namespace secretshim::plugin
