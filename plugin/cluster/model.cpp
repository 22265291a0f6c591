#include "plugin/cluster/model.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

#include "mountfs/secret_ref.hpp"
#include "plugin/cluster/base64.hpp"
#include "plugin/protocol/json_fields.hpp"

namespace secretshim::cluster {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxRecord = 1 << 20;  // a record larger than this is not ours

bool nameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

std::string join(std::string_view a, std::string_view b, std::string_view c = {}) {
    std::string s(a);
    s += b;
    s += c;
    return s;
}

// Field readers that treat a wrong type as absent.
bool getString(const json& j, const char* key, std::string& out) {
    const std::string* s = plugin::stringAt(j, key);
    if (s) out = *s;
    return s != nullptr;
}

bool getBytes(const json& j, const char* key, std::string& out) {
    std::string text;
    if (!getString(j, key, text)) return false;
    auto bytes = base64Decode(text);
    if (!bytes) return false;
    out = std::move(*bytes);
    return true;
}

template <class Int>
bool getInt(const json& j, const char* key, Int& out) {
    const auto it = j.find(key);
    if (it == j.end()) return false;
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<Int>::max())) return false;
        out = static_cast<Int>(v);
        return true;
    }
    if (it->is_number_integer()) {
        const auto v = it->get<std::int64_t>();
        if constexpr (std::is_unsigned_v<Int>) {
            if (v < 0) return false;
        }
        if (v < static_cast<std::int64_t>(std::numeric_limits<Int>::min()) ||
            static_cast<std::uint64_t>(v < 0 ? 0 : v) > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
            return false;
        out = static_cast<Int>(v);
        return true;
    }
    return false;
}

Result<json> parseObject(std::string_view text, const char* what) {
    if (text.size() > kMaxRecord) return fail(std::string(what) + ": record too large");
    json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(std::string(what) + ": not a JSON object");
    return j;
}

tl::unexpected<Error> badField(const char* what, const char* field) {
    return fail(std::string(what) + ": missing or invalid field \"" + field + "\"");
}

json sealedJson(const SealedValue& s) {
    json j = {{"nonce", base64Encode(s.nonce)}, {"ciphertext", base64Encode(s.ciphertext)},
              {"tag", base64Encode(s.tag)}};
    if (!s.epk.empty()) j["epk"] = base64Encode(s.epk);
    return j;
}

Result<SealedValue> sealedFrom(const json& j, const char* what, bool withEpk) {
    const auto it = j.find("sealed");
    if (it == j.end() || !it->is_object()) return badField(what, "sealed");
    SealedValue s;
    if (!getBytes(*it, "nonce", s.nonce) || s.nonce.size() != 12) return badField(what, "sealed.nonce");
    if (!getBytes(*it, "ciphertext", s.ciphertext) || s.ciphertext.empty()) return badField(what, "sealed.ciphertext");
    if (!getBytes(*it, "tag", s.tag) || s.tag.size() != 16) return badField(what, "sealed.tag");
    if (withEpk && (!getBytes(*it, "epk", s.epk) || s.epk.size() != 32)) return badField(what, "sealed.epk");
    return s;
}

void addSigned(json& j, const Signed& sig) {
    if (sig.signer.empty()) return;
    j["serial"] = sig.serial;
    j["signer"] = sig.signer;
    j["signature"] = base64Encode(sig.signature);
}

// A record without a signature decodes (the admin CLI lists it, a node
// refuses it as "not signed"); a malformed one does not.
Result<void> signedFrom(const json& j, const char* what, Signed& sig) {
    if (!j.contains("signature") && !j.contains("signer") && !j.contains("serial")) return {};
    if (!getInt(j, "serial", sig.serial) || sig.serial == 0) return badField(what, "serial");
    if (!getString(j, "signer", sig.signer) || sig.signer.empty() || sig.signer.size() > 64)
        return badField(what, "signer");
    if (!getBytes(j, "signature", sig.signature) || sig.signature.size() != 64) return badField(what, "signature");
    return {};
}

// Length-prefixed fields: no field's bytes can pass for another's.
void addField(std::string& out, std::string_view field) {
    out += std::to_string(field.size());
    out += ':';
    out += field;
}

std::string messageStart(std::string_view kind, std::string_view key, const Signed& sig) {
    std::string m = "secretshim signed record v1";
    addField(m, kind);
    addField(m, key);
    addField(m, std::to_string(sig.serial));
    addField(m, sig.signer);
    return m;
}

void addSealed(std::string& m, const SealedValue& s) {
    for (const std::string* part : {&s.epk, &s.nonce, &s.ciphertext, &s.tag}) addField(m, *part);
}

}  // namespace

std::string signedMessage(std::string_view key, const TaskAssignment& t) {
    std::string m = messageStart("task", key, t.sig);
    addField(m, t.task);
    addField(m, t.secrets);
    addField(m, t.identity.text());
    addField(m, std::to_string(t.maxContainers));
    addField(m, std::to_string(t.signal));
    return m;
}

std::string signedMessage(std::string_view key, const NodeSecret& s) {
    std::string m = messageStart("secret copy", key, s.sig);
    addField(m, s.name);
    addField(m, s.id);
    addField(m, std::to_string(s.version));
    addSealed(m, s.sealed);
    return m;
}

std::string signedMessage(std::string_view key, const NodeRegistration& r) {
    std::string m = messageStart("node registration", key, r.sig);
    addField(m, r.node);
    addField(m, r.publicKey);
    return m;
}

std::string signedMessage(std::string_view key, const Published& p) {
    std::string m = messageStart("published version", key, p.sig);
    addField(m, p.id);
    addField(m, std::to_string(p.version));
    return m;
}

namespace {

void addGrants(std::string& m, const TaskAssignment& t) {
    addField(m, t.secrets);
    addField(m, t.identity.text());
    addField(m, std::to_string(t.maxContainers));
    addField(m, std::to_string(t.signal));
}

}  // namespace

std::string signedMessage(std::string_view key, const Holder& h) {
    std::string m = messageStart("holder", key, h.sig);
    addField(m, h.secret);
    addField(m, h.task);
    addField(m, h.node);
    return m;
}

std::string signedMessage(std::string_view key, const Service& s) {
    std::string m = messageStart("service", key, s.sig);
    addField(m, s.name);
    addGrants(m, s.grants);
    return m;
}

std::string signedMessage(std::string_view key, const TaskPlacement& p) {
    std::string m = messageStart("task placement", key, p.sig);
    addField(m, p.service);
    addField(m, p.node);
    addField(m, p.task.task);
    addGrants(m, p.task);
    return m;
}

Result<void> checkName(std::string_view kind, std::string_view name) {
    if (kind == "secret") return mountfs::checkSecretName(name);
    const std::string what(kind);
    if (name.empty()) return fail(what + " name is empty");
    if (name.size() > kMaxNameLength)
        return fail(what + " name " + quote(name.substr(0, 32)) + "... is longer than " +
                    std::to_string(kMaxNameLength) + " bytes");
    const char first = name.front();
    bool ok = first != '.' && first != '-' && first != '_' && name.find("..") == std::string_view::npos;
    for (char c : name) ok = ok && nameChar(c);
    if (!ok)
        return fail(what + " name " + quote(name) +
                    " is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit, no \"..\"");
    return {};
}

std::string nodesPrefix() { return join(kRoot, "nodes/"); }
std::string nodePrefix(std::string_view node) { return join(nodesPrefix(), node, "/"); }
std::string taskKey(std::string_view node, std::string_view task) { return join(nodePrefix(node), "tasks/", task); }
std::string nodeSecretPrefix(std::string_view node, std::string_view name) {
    return join(nodePrefix(node), "secrets/", join(name, "/"));
}
std::string nodeSecretKey(std::string_view node, std::string_view name, std::uint64_t version) {
    std::string digits = std::to_string(version);
    return nodeSecretPrefix(node, name) + std::string(kVersionDigits - digits.size(), '0') + digits;
}
std::string publishedPrefix() { return join(kRoot, "published/"); }
std::string publishedKey(std::string_view id) { return join(publishedPrefix(), id); }
std::string tasksPrefix() { return join(kRoot, "tasks/"); }
std::string taskIndexKey(std::string_view task) { return join(tasksPrefix(), task); }
std::string holdersPrefix(std::string_view secret) { return join(kRoot, "holders/", join(secret, "/")); }
std::string holderKey(std::string_view secret, std::string_view task) { return holdersPrefix(secret) + std::string(task); }
std::string servicesPrefix() { return join(kRoot, "services/"); }
std::string serviceKey(std::string_view service) { return join(servicesPrefix(), service); }
std::string mastersPrefix() { return join(kRoot, "secrets/"); }
std::string masterKey(std::string_view name) { return join(mastersPrefix(), name); }
std::string registrationsPrefix() { return join(kRoot, "registry/"); }
std::string registrationKey(std::string_view node) { return join(registrationsPrefix(), node); }

Result<NodeKeyRef> parseNodeKey(std::string_view key) {
    const std::string prefix = nodesPrefix();
    if (key.substr(0, prefix.size()) != prefix) return fail("key " + quote(key) + " is not under " + prefix);
    std::string_view rest = key.substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return fail("key " + quote(key) + ": no record kind");
    NodeKeyRef ref;
    ref.node = std::string(rest.substr(0, slash));
    rest = rest.substr(slash + 1);
    if (auto ok = checkName("node", ref.node); !ok) return fail("key " + quote(key) + ": " + ok.error().message);
    const auto slash2 = rest.find('/');
    if (slash2 == std::string_view::npos) return fail("key " + quote(key) + ": no record kind");
    const std::string_view kind = rest.substr(0, slash2);
    ref.name = std::string(rest.substr(slash2 + 1));
    if (kind == "tasks") {
        ref.kind = NodeKeyRef::Kind::task;
    } else if (kind == "secrets") {
        // <name>/<version>: kVersionDigits decimal digits (one key per
        // version, spelled one way).
        ref.kind = NodeKeyRef::Kind::secret;
        const auto slash3 = ref.name.find('/');
        if (slash3 == std::string::npos) return fail("key " + quote(key) + ": no version");
        const std::string_view digits = std::string_view(ref.name).substr(slash3 + 1);
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ref.version);
        if (digits.size() != kVersionDigits || ec != std::errc() || end != digits.data() + digits.size() ||
            ref.version == 0)
            return fail("key " + quote(key) + ": invalid version " + quote(digits));
        ref.name.resize(slash3);
    } else {
        return fail("key " + quote(key) + ": unknown record kind " + quote(kind));
    }
    if (auto ok = checkName(ref.kind == NodeKeyRef::Kind::task ? "task" : "secret", ref.name); !ok)
        return fail("key " + quote(key) + ": " + ok.error().message);
    return ref;
}

Result<plugin::GrantRule> parseBinding(std::string_view text) {
    auto rule = plugin::GrantRule::parse(text);
    if (!rule) return rule;
    if (rule->pinsAnything())
        return fail("the identity " + quote(text) + " pins a target, owner or mode: a task's specs say those");
    return rule;
}

std::string encodeTask(const TaskAssignment& t) {
    json j = {{"task", t.task}, {"secrets", t.secrets}, {"identity", t.identity.text()},
              {"max_containers", t.maxContainers}};
    if (t.signal != 0) j["signal"] = t.signal;
    addSigned(j, t.sig);
    return j.dump();
}

namespace {

// A task's fields (a node's task record, or an admin's placement of it).
Result<TaskAssignment> taskFrom(const json& j, const char* what) {
    TaskAssignment t;
    if (!getString(j, "task", t.task) || !checkName("task", t.task)) return badField(what, "task");
    if (!getString(j, "secrets", t.secrets)) return badField(what, "secrets");
    // No identity, no container: a task record from before bindings existed
    // reaches nobody until it is assigned again.
    std::string identity;
    if (!getString(j, "identity", identity)) return badField(what, "identity");
    auto rule = parseBinding(identity);
    if (!rule) return fail(std::string(what) + ": " + rule.error().message);
    t.identity = std::move(*rule);
    if (j.contains("max_containers") && (!getInt(j, "max_containers", t.maxContainers) || t.maxContainers == 0 ||
                                         t.maxContainers > kMaxContainersLimit))
        return badField(what, "max_containers");
    if (j.contains("signal") && (!getInt(j, "signal", t.signal) || t.signal < 0 || t.signal > 64))
        return badField(what, "signal");
    if (auto ok = signedFrom(j, what, t.sig); !ok) return propagate(ok);
    return t;
}

}  // namespace

Result<TaskAssignment> decodeTask(std::string_view text) {
    auto j = parseObject(text, "task record");
    if (!j) return propagate(j);
    return taskFrom(*j, "task record");
}

std::string encodeNodeSecret(const NodeSecret& s) {
    json j = {{"name", s.name}, {"id", s.id}, {"version", s.version}, {"sealed", sealedJson(s.sealed)}};
    addSigned(j, s.sig);
    return j.dump();
}

Result<NodeSecret> decodeNodeSecret(std::string_view text) {
    constexpr const char* what = "secret copy";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    NodeSecret s;
    if (!getString(*j, "name", s.name) || !checkName("secret", s.name)) return badField(what, "name");
    if (!getString(*j, "id", s.id) || s.id.empty() || s.id.size() > 64) return badField(what, "id");
    if (!getInt(*j, "version", s.version) || s.version == 0) return badField(what, "version");
    auto sealed = sealedFrom(*j, what, true);
    if (!sealed) return propagate(sealed);
    s.sealed = std::move(*sealed);
    if (auto ok = signedFrom(*j, what, s.sig); !ok) return propagate(ok);
    return s;
}

std::string encodeMaster(const MasterSecret& s) {
    json j = {{"name", s.name},       {"id", s.id},           {"version", s.version},
              {"created", s.created}, {"updated", s.updated}, {"size", s.size},
              {"sealed", sealedJson(s.sealed)}};
    if (s.staging != 0) j["staging"] = s.staging;
    if (s.stagingSerial != 0) j["staging_serial"] = s.stagingSerial;
    return j.dump();
}

Result<MasterSecret> decodeMaster(std::string_view text) {
    constexpr const char* what = "secret record";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    MasterSecret s;
    if (!getString(*j, "name", s.name) || !checkName("secret", s.name)) return badField(what, "name");
    if (!getString(*j, "id", s.id) || s.id.empty() || s.id.size() > 64) return badField(what, "id");
    if (!getInt(*j, "version", s.version) || s.version == 0) return badField(what, "version");
    if (!getInt(*j, "created", s.created)) return badField(what, "created");
    if (!getInt(*j, "updated", s.updated)) return badField(what, "updated");
    if (!getInt(*j, "size", s.size)) return badField(what, "size");
    if (j->contains("staging") && !getInt(*j, "staging", s.staging)) return badField(what, "staging");
    if (j->contains("staging_serial") && !getInt(*j, "staging_serial", s.stagingSerial))
        return badField(what, "staging_serial");
    auto sealed = sealedFrom(*j, what, false);
    if (!sealed) return propagate(sealed);
    s.sealed = std::move(*sealed);
    return s;
}

std::string encodeRegistration(const NodeRegistration& r) {
    json j = {{"node", r.node}, {"public_key", base64Encode(r.publicKey)}};
    addSigned(j, r.sig);
    return j.dump();
}

Result<NodeRegistration> decodeRegistration(std::string_view text) {
    constexpr const char* what = "node registration";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    NodeRegistration r;
    if (!getString(*j, "node", r.node) || !checkName("node", r.node)) return badField(what, "node");
    if (!getBytes(*j, "public_key", r.publicKey) || r.publicKey.size() != 32) return badField(what, "public_key");
    if (auto ok = signedFrom(*j, what, r.sig); !ok) return propagate(ok);
    return r;
}

std::string encodePublished(const Published& p) {
    json j = {{"id", p.id}, {"version", p.version}};
    addSigned(j, p.sig);
    return j.dump();
}

Result<Published> decodePublished(std::string_view text) {
    constexpr const char* what = "published version";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    Published p;
    if (!getString(*j, "id", p.id) || p.id.empty() || p.id.size() > 64) return badField(what, "id");
    if (!getInt(*j, "version", p.version) || p.version == 0) return badField(what, "version");
    if (auto ok = signedFrom(*j, what, p.sig); !ok) return propagate(ok);
    return p;
}

std::string encodePlacement(const TaskPlacement& p) {
    TaskAssignment bare = p.task;
    bare.sig = {};
    json j = json::parse(encodeTask(bare));
    j["node"] = p.node;
    if (!p.service.empty()) j["service"] = p.service;
    addSigned(j, p.sig);
    return j.dump();
}

Result<TaskPlacement> decodePlacement(std::string_view text) {
    constexpr const char* what = "task placement";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    auto t = taskFrom(*j, what);  // its signature is the placement's
    if (!t) return propagate(t);
    TaskPlacement p;
    if (!getString(*j, "node", p.node) || !checkName("node", p.node)) return badField(what, "node");
    if (j->contains("service") && (!getString(*j, "service", p.service) || !checkName("service", p.service)))
        return badField(what, "service");
    p.sig = t->sig;
    p.task = std::move(*t);
    p.task.sig = {};
    return p;
}

std::string encodeHolder(const Holder& h) {
    json j = {{"secret", h.secret}, {"task", h.task}, {"node", h.node}};
    addSigned(j, h.sig);
    return j.dump();
}

Result<Holder> decodeHolder(std::string_view text) {
    constexpr const char* what = "holder record";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    Holder h;
    if (!getString(*j, "secret", h.secret) || !checkName("secret", h.secret)) return badField(what, "secret");
    if (!getString(*j, "task", h.task) || !checkName("task", h.task)) return badField(what, "task");
    if (!getString(*j, "node", h.node) || !checkName("node", h.node)) return badField(what, "node");
    if (auto ok = signedFrom(*j, what, h.sig); !ok) return propagate(ok);
    return h;
}

// A service's record: its grants as a task record's fields, with "service"
// for "task".
std::string encodeService(const Service& s) {
    TaskAssignment bare = s.grants;
    bare.task = s.name;
    bare.sig = s.sig;
    json j = json::parse(encodeTask(bare));
    j.erase("task");
    j["service"] = s.name;
    return j.dump();
}

Result<Service> decodeService(std::string_view text) {
    constexpr const char* what = "service record";
    auto j = parseObject(text, what);
    if (!j) return propagate(j);
    Service s;
    if (!getString(*j, "service", s.name) || !checkName("service", s.name)) return badField(what, "service");
    (*j)["task"] = s.name;
    auto grants = taskFrom(*j, what);
    if (!grants) return propagate(grants);
    s.sig = grants->sig;
    s.grants = std::move(*grants);
    s.grants.task.clear();
    s.grants.sig = {};
    return s;
}

}  // namespace secretshim::cluster
