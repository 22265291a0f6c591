#include "plugin/identity/grant_rule.hpp"

#include <cstdio>

#include "mountfs/base/trim.hpp"

namespace secretshim::plugin {

namespace {

constexpr std::size_t kMaxRule = 8192;
constexpr std::size_t kMaxPattern = 253;

// A rule is one line: only blanks around its fields are trimmed.
std::string_view trimBlanks(std::string_view s) { return trim(s, " \t"); }

bool nameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

// A Kubernetes namespace is a DNS label: lowercase letters, digits and '-'.
bool validNamespace(std::string_view s) {
    if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

bool validPattern(std::string_view s) {
    if (s.empty() || s.size() > kMaxPattern) return false;
    for (char c : s)
        if (!nameChar(c) && c != '*' && c != '?') return false;
    return true;
}

std::string octal(std::uint32_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0%03o", mode & 0777);
    return buf;
}

}  // namespace

bool globMatch(std::string_view pattern, std::string_view text) {
    // The classic two-pointer match: on a mismatch, let the last `*` take
    // one more character. Linear in practice, never exponential.
    std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p, ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

Result<GrantRule> GrantRule::parse(std::string_view input) {
    const std::string shown(input.substr(0, 256));
    const auto bad = [&](const std::string& why) { return fail("grant rule " + quote(shown) + ": " + why); };
    if (input.size() > kMaxRule) return bad("longer than " + std::to_string(kMaxRule) + " bytes");
    GrantRule rule;
    std::size_t start = 0;
    bool first = true, haveNs = false, haveName = false;
    std::optional<std::string> podSeen, containerSeen;
    while (start <= input.size()) {
        const std::size_t end = std::min(input.find(',', start), input.size());
        const std::string_view field = trimBlanks(input.substr(start, end - start));
        start = end + 1;
        if (first) {
            first = false;
            if (field == "kubernetes") rule.kind = WorkloadIdentity::Kind::kubernetes;
            else if (field == "podman") rule.kind = WorkloadIdentity::Kind::podman;
            else if (field == "root") rule.kind = WorkloadIdentity::Kind::root;
            else return bad("it must start with kubernetes, podman or root, not " + quote(field));
            continue;
        }
        const std::size_t eq = field.find('=');
        if (eq == std::string_view::npos) return bad("field " + quote(field) + " is not key=value");
        const std::string key(trimBlanks(field.substr(0, eq)));
        const std::string_view value = trimBlanks(field.substr(eq + 1));
        const auto once = [&](bool seen) -> Result<void> {
            if (seen) return bad("duplicate key " + quote(key));
            return {};
        };
        const bool kube = rule.kind == WorkloadIdentity::Kind::kubernetes;
        Result<void> ok;
        if (kube && key == "namespace") {
            if (!(ok = once(haveNs))) return propagate(ok);
            if (!validNamespace(value)) return bad("namespace " + quote(value) + " is not a Kubernetes namespace name");
            rule.ns = std::string(value);
            haveNs = true;
        } else if (kube && (key == "pod" || key == "container")) {
            auto& seen = key == "pod" ? podSeen : containerSeen;
            if (!(ok = once(seen.has_value()))) return propagate(ok);
            if (!validPattern(value)) return bad(key + " " + quote(value) + " is not a name or a glob of one");
            seen = std::string(value);
        } else if (rule.kind == WorkloadIdentity::Kind::podman && key == "name") {
            if (!(ok = once(haveName))) return propagate(ok);
            if (!validPattern(value)) return bad("name " + quote(value) + " is not a name or a glob of one");
            rule.name = std::string(value);
            haveName = true;
        } else if (key == "target") {
            if (!(ok = once(rule.target.has_value()))) return propagate(ok);
            auto target = mountfs::parseTarget(value);
            if (!target) return bad(target.error().message);
            rule.target = std::move(*target);
        } else if (key == "uid" || key == "gid") {
            auto& slot = key == "uid" ? rule.uid : rule.gid;
            if (!(ok = once(slot.has_value()))) return propagate(ok);
            if (value.empty()) return bad(key + " is empty");
            auto id = mountfs::parseId(key, value);
            if (!id) return bad(id.error().message);
            slot = *id;
        } else if (key == "mode") {
            if (!(ok = once(rule.mode.has_value()))) return propagate(ok);
            if (value.empty()) return bad("mode is empty");
            auto mode = mountfs::parseMode(value);
            if (!mode) return bad(mode.error().message);
            rule.mode = *mode;
        } else {
            return bad("unknown key " + quote(key) + " for a " + std::string(trimBlanks(input.substr(0, input.find(',')))) +
                       " rule");
        }
    }
    if (rule.kind == WorkloadIdentity::Kind::kubernetes && !haveNs) return bad("a kubernetes rule needs namespace=");
    if (rule.kind == WorkloadIdentity::Kind::podman && !haveName) return bad("a podman rule needs name=");
    if (podSeen) rule.pod = *podSeen;
    if (containerSeen) rule.container = *containerSeen;
    return rule;
}

std::string GrantRule::text() const {
    std::string out;
    switch (kind) {
        case WorkloadIdentity::Kind::kubernetes:
            out = "kubernetes,namespace=" + ns;
            if (pod != "*") out += ",pod=" + pod;
            if (container != "*") out += ",container=" + container;
            break;
        case WorkloadIdentity::Kind::podman: out = "podman,name=" + name; break;
        case WorkloadIdentity::Kind::root: out = "root"; break;
    }
    if (target) out += ",target=" + *target;
    if (uid) out += ",uid=" + std::to_string(*uid);
    if (gid) out += ",gid=" + std::to_string(*gid);
    if (mode) out += ",mode=" + octal(*mode);
    return out;
}

bool GrantRule::matches(const WorkloadIdentity& identity) const {
    if (identity.kind != kind) return false;
    switch (kind) {
        case WorkloadIdentity::Kind::kubernetes:
            return identity.ns == ns && globMatch(pod, identity.pod) && globMatch(container, identity.container);
        case WorkloadIdentity::Kind::podman: return globMatch(name, identity.name);
        case WorkloadIdentity::Kind::root: return true;
    }
    return false;
}

bool GrantRule::allows(const WorkloadIdentity& identity, const mountfs::SecretRef& ref) const {
    return matches(identity) && (!target || *target == ref.target) && (!uid || *uid == ref.uid) &&
           (!gid || *gid == ref.gid) && (!mode || *mode == ref.mode);
}

}  // namespace secretshim::plugin
