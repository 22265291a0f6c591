// A reference to one secret from a task, in Docker's --secret syntax:
//   NAME
//   source=NAME[,target=PATH][,uid=N][,gid=N][,mode=OCTAL]
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"

namespace secretshim::mountfs {

inline constexpr std::string_view kSecretsDir = "/run/secrets";
inline constexpr std::uint32_t kDefaultMode = 0444;
// Docker refuses payloads of 500 KiB and more; we refuse more than this.
inline constexpr std::size_t kDefaultMaxPayload = 500 * 1024;
// References one task may name (Docker has no limit; a view of more is no
// use to anyone, and each costs the agent time on a shared thread).
inline constexpr std::size_t kMaxRefs = 1024;

struct SecretRef {
    std::string source;   // the secret's name
    std::string target;   // absolute, clean path inside the container
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::uint32_t mode = kDefaultMode;

    bool operator==(const SecretRef&) const = default;
};

// A secret's name has one grammar everywhere (the annotation, the local
// store, the cluster, Windows): at most 64 characters, as Docker swarm's
// secret names, from [A-Za-z0-9_.-], starting with a letter or a digit, so
// that it is never a path ("..", "a/b") nor a hidden file.
inline constexpr std::string_view kSecretNameGrammar = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}";
bool isValidSecretName(std::string_view name);
// The same as an error: `secret name "x" does not match <grammar>`.
Result<void> checkSecretName(std::string_view name);

// Parses one spec; targets are made absolute (a relative target is taken
// under /run/secrets) and checked.
Result<SecretRef> parseSecretRef(std::string_view spec);

// The spec parseSecretRef() reads back as `ref`, every field spelled out:
// "source=db,target=/run/secrets/db,uid=0,gid=0,mode=0444".
std::string formatSecretRef(const SecretRef& ref);

// Parses an annotation value: specs separated by ';' (blank entries are
// ignored), then checks the set as a whole (validateRefs).
Result<std::vector<SecretRef>> parseSecretRefs(std::string_view annotation);

// Checks that no two references share a target and that no target lies
// inside another (a file cannot also be a directory).
Result<void> validateRefs(const std::vector<SecretRef>& refs);

// The fields of a spec on their own, for a grammar that pins them (a grant):
// a target as parseSecretRef() makes it (absolute under /run/secrets when
// relative, clean, not under /proc, /sys or /dev; not empty), a uid or gid
// (`key` names it in the message; empty means 0) and an octal mode (empty
// means 0444). Messages name the field: "target \"../x\" is not clean ...".
Result<std::string> parseTarget(std::string_view raw);
Result<std::uint32_t> parseId(std::string_view key, std::string_view value);
Result<std::uint32_t> parseMode(std::string_view value);

// Refuses an empty payload or one over maxBytes.
Result<void> checkPayloadSize(std::string_view name, std::size_t size,
                              std::size_t maxBytes = kDefaultMaxPayload);

}  // namespace secretshim::mountfs
