#include "plugin/agent/local_source.hpp"

#include <algorithm>
#include <cerrno>

#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

namespace {

std::vector<std::string> texts(const std::vector<GrantRule>& rules) {
    std::vector<std::string> out;
    for (const auto& r : rules) out.push_back(r.text());
    return out;
}

}  // namespace

Result<std::unique_ptr<LocalSource>> LocalSource::open(const std::string& stateDir, StoreOptions options,
                                                       std::vector<std::string>& problems) {
    auto store = LocalStore::open(stateDir, options);
    if (!store) return propagate(store);
    std::unique_ptr<LocalSource> source(new LocalSource(std::move(*store)));
    auto metas = source->store_.list();
    if (!metas) return propagate(metas);
    for (const auto& meta : *metas) {
        Grants& grants = source->grants_[meta.name];
        grants.secretId = meta.id;
        auto rules = source->store_.readGrants(meta.name, meta.id);
        if (!rules) {
            problems.push_back("secret " + meta.name + " reaches nobody: " + rules.error().message);
            continue;
        }
        for (const auto& text : *rules) {
            auto rule = GrantRule::parse(text);
            if (!rule) {
                problems.push_back("secret " + meta.name + ": a grant was skipped: " + rule.error().message);
                continue;
            }
            grants.rules.push_back(std::move(*rule));
        }
    }
    return source;
}

bool LocalSource::allows(const WorkloadIdentity& identity, const mountfs::SecretRef& ref) const {
    const auto it = grants_.find(ref.source);
    if (it == grants_.end()) return false;
    return std::any_of(it->second.rules.begin(), it->second.rules.end(),
                       [&](const GrantRule& r) { return r.allows(identity, ref); });
}

Result<GrantedSecrets> LocalSource::grant(const WorkloadIdentity& identity, const std::string& secrets,
                                          const std::string& task) {
    if (!task.empty())
        return fail("the annotation " + std::string(kTaskAnnotation) + " needs an agent with source: etcd");
    GrantedSecrets granted;
    auto refs = mountfs::parseSecretRefs(secrets);
    if (!refs) return propagate(refs);
    // Every reference is checked before any record is read: a refusal says
    // the same of a secret that does not exist as of one not granted.
    for (const auto& ref : *refs)
        if (!allows(identity, ref)) return notGranted("secret " + quote(ref.source), identity);
    std::vector<std::string> names;
    std::vector<std::size_t> which;
    for (const auto& ref : *refs) {
        auto at = std::find(names.begin(), names.end(), ref.source);
        which.push_back(static_cast<std::size_t>(at - names.begin()));
        if (at == names.end()) names.push_back(ref.source);
    }
    auto sealed = store_.readMany(names);
    if (!sealed) return propagate(sealed);
    auto records = std::make_shared<const SealedSecrets>(std::move(*sealed));
    granted.specs = secrets;
    granted.refs = std::move(*refs);
    granted.payloads = std::make_unique<SealedPayloads>(*records, std::move(which));
    granted.held = std::move(records);
    return granted;
}

Result<SecretMeta> LocalSource::create(std::string_view name, mountfs::Bytes value,
                                       const std::vector<GrantRule>& rules, const SecretLabels& labels) {
    auto meta = store_.create(name, value, labels);
    if (!meta) return meta;
    Grants grants{meta->id, rules};
    if (auto ok = save(meta->name, grants); !ok) {
        (void)store_.remove(name);  // all or nothing
        return propagate(ok);
    }
    grants_[meta->name] = std::move(grants);
    return meta;
}

const std::vector<GrantRule>* LocalSource::rules(const std::string& name) const {
    const auto it = grants_.find(name);
    return it == grants_.end() ? nullptr : &it->second.rules;
}

std::vector<std::string> LocalSource::ruleTexts(const std::string& name) const {
    const auto* held = rules(name);
    return held ? texts(*held) : std::vector<std::string>{};
}

Result<void> LocalSource::save(const std::string& name, const Grants& grants) {
    return store_.writeGrants(name, grants.secretId, texts(grants.rules));
}

Result<void> LocalSource::addGrant(const std::string& name, const GrantRule& rule) {
    const auto it = grants_.find(name);
    if (it == grants_.end()) return fail("secret " + quote(name) + " does not exist");
    Grants next = it->second;
    if (std::find(next.rules.begin(), next.rules.end(), rule) != next.rules.end())
        return fail("secret " + quote(name) + " is already granted to " + rule.text());
    next.rules.push_back(rule);
    if (auto ok = save(name, next); !ok) return ok;
    it->second = std::move(next);
    return {};
}

Result<void> LocalSource::revokeGrant(const std::string& name, const GrantRule& rule) {
    const auto it = grants_.find(name);
    if (it == grants_.end()) return fail("secret " + quote(name) + " does not exist");
    Grants next = it->second;
    const auto at = std::find(next.rules.begin(), next.rules.end(), rule);
    if (at == next.rules.end()) return fail("secret " + quote(name) + " has no grant " + rule.text());
    next.rules.erase(at);
    if (auto ok = save(name, next); !ok) return ok;
    it->second = std::move(next);
    return {};
}

Result<void> LocalSource::remove(const std::string& name) {
    if (auto ok = store_.remove(name); !ok) return ok;
    grants_.erase(name);
    return {};
}

}  // namespace secretshim::plugin
