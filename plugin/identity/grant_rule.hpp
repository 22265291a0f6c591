// A grant: who may receive a secret, in one line an admin writes
// (`secretshimctl secret grant NAME RULE`) and a cluster task's binding
// reuses (`task assign ... --identity RULE`):
//
//   kubernetes,namespace=NS[,pod=GLOB][,container=GLOB]   a container of a pod in NS
//   podman,name=GLOB                                       a Podman container by its name
//   root                                                   a container started directly by root
//
// and, on a local grant, optional pins: target=PATH, uid=N, gid=N,
// mode=OCTAL. A pinned field must be exactly what the reference asks for,
// so a request written by someone else (an image, under Podman 4.3) cannot
// steer a granted secret to a path or owner of its choosing. GLOB knows `*`
// (any run of characters) and `?` (one character); a namespace is exact.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/identity/workload_identity.hpp"

namespace secretshim::plugin {

struct GrantRule {
    WorkloadIdentity::Kind kind = WorkloadIdentity::Kind::root;
    std::string ns;               // kubernetes: exact
    std::string pod = "*";        // kubernetes: glob
    std::string container = "*";  // kubernetes: glob
    std::string name;             // podman: glob
    std::optional<std::string> target;
    std::optional<std::uint32_t> uid, gid, mode;

    // Parses a rule; "grant rule "TEXT": WHAT" on error.
    static Result<GrantRule> parse(std::string_view text);
    // The rule in a fixed order with only the fields it sets: two spellings
    // of one rule give the same text (what `revoke` compares).
    std::string text() const;
    bool pinsAnything() const { return target || uid || gid || mode; }
    // Whether the rule names this identity (pins aside).
    bool matches(const WorkloadIdentity& identity) const;
    // Whether it grants `ref` (as the container asked for it, in the
    // container's own ids) to this identity: it matches, and every pin holds.
    bool allows(const WorkloadIdentity& identity, const mountfs::SecretRef& ref) const;

    bool operator==(const GrantRule& other) const { return text() == other.text(); }
};

// `*` and `?` only; no escapes, no classes.
bool globMatch(std::string_view pattern, std::string_view text);

}  // namespace secretshim::plugin
