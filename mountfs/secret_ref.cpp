#include "mountfs/secret_ref.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <unordered_map>

#include "mountfs/base/trim.hpp"

namespace secretshim::mountfs {
namespace {

constexpr std::uint64_t kMaxId = 4294967294ULL;  // 2^32-2: (uid_t)-1 means "no change"
constexpr std::size_t kMaxTargetLength = 4095;

bool hasPathPrefix(std::string_view path, std::string_view dir) {
    return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir &&
                           path[dir.size()] == '/');
}

}  // namespace

// The parts of a spec, each refused with a message that names the field
// and its value; parseSecretRef() puts "secret spec "...": " before it.
Result<std::uint32_t> parseId(std::string_view key, std::string_view value) {
    if (value.empty()) return 0u;  // Docker fails on an empty uid/gid; we take the default
    std::uint64_t n = 0;
    for (char c : value) {
        if (c < '0' || c > '9') return fail(std::string(key) + " " + quote(value) + " is not a number");
        n = n * 10 + static_cast<unsigned>(c - '0');
        if (n > kMaxId) return fail(std::string(key) + " " + quote(value) + " is larger than 4294967294");
    }
    return static_cast<std::uint32_t>(n);
}

Result<std::uint32_t> parseMode(std::string_view value) {
    if (value.empty()) return kDefaultMode;
    std::uint32_t n = 0;
    for (char c : value) {
        if (c < '0' || c > '7') return fail("mode " + quote(value) + " is not octal");
        n = n * 8 + static_cast<unsigned>(c - '0');
        if (n > 0777) return fail("mode " + quote(value) + " is outside 0..0777");
    }
    return n;
}

namespace {

Result<std::string> cleanTarget(std::string_view source, std::string_view raw) {
    std::string target;
    if (raw.empty())
        target = std::string(kSecretsDir) + "/" + std::string(source);
    else if (raw.front() != '/')
        target = std::string(kSecretsDir) + "/" + std::string(raw);
    else
        target = std::string(raw);

    const auto bad = [&](std::string_view why) {
        return fail("target " + quote(raw) + " " + std::string(why));
    };
    if (target.find('\0') != std::string::npos) return bad("contains a NUL byte");
    if (target.size() > kMaxTargetLength) return bad("is too long");
    if (target.find("//") != std::string::npos) return bad("is not clean (\"//\")");
    if (target.back() == '/') return bad("is not clean (trailing \"/\")");
    std::size_t start = 1;
    while (start <= target.size()) {
        const std::size_t end = std::min(target.find('/', start), target.size());
        const std::string_view part = std::string_view(target).substr(start, end - start);
        if (part == "..") return bad("is not clean (\"..\")");
        if (part == ".") return bad("is not clean (\".\")");
        if (part.size() > 255) return bad("has a component longer than 255 bytes");
        start = end + 1;
    }
    for (std::string_view dir : {"/proc", "/sys", "/dev"})
        if (hasPathPrefix(target, dir)) return bad("is under " + std::string(dir));
    if (target == kSecretsDir || target == "/")
        return bad("is not a file path");
    if (hasPathPrefix(kSecretsDir, target)) return bad("would hide " + std::string(kSecretsDir));
    return target;
}

}  // namespace

Result<std::string> parseTarget(std::string_view raw) {
    if (raw.empty()) return fail("target is empty");
    return cleanTarget("", raw);
}

bool isValidSecretName(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    const auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!alnum(name.front())) return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

Result<void> checkSecretName(std::string_view name) {
    if (!isValidSecretName(name))
        return fail("secret name " + quote(name) + " does not match " + std::string(kSecretNameGrammar));
    return {};
}

Result<SecretRef> parseSecretRef(std::string_view spec) {
    spec = trim(spec);
    if (spec.empty()) return fail("empty secret spec");

    std::optional<std::string_view> source, target, uid, gid, mode;
    if (spec.find('=') == std::string_view::npos && spec.find(',') == std::string_view::npos) {
        source = spec;  // the short form: a bare name
    } else {
        std::size_t start = 0;
        while (start <= spec.size()) {
            const std::size_t end = std::min(spec.find(',', start), spec.size());
            const std::string_view field = spec.substr(start, end - start);
            start = end + 1;
            const std::size_t eq = field.find('=');
            if (eq == std::string_view::npos)
                return fail("secret spec " + quote(spec) + ": field " + quote(field) +
                            " is not key=value");
            const std::string_view key = trim(field.substr(0, eq));
            const std::string_view value = trim(field.substr(eq + 1));
            std::optional<std::string_view>* slot = nullptr;
            if (key == "source" || key == "src")
                slot = &source;
            else if (key == "target")
                slot = &target;
            else if (key == "uid")
                slot = &uid;
            else if (key == "gid")
                slot = &gid;
            else if (key == "mode")
                slot = &mode;
            else
                return fail("secret spec " + quote(spec) + ": unknown key " + quote(key));
            if (slot->has_value())
                return fail("secret spec " + quote(spec) + ": duplicate key " + quote(key));
            *slot = value;
        }
    }

    if (!source || source->empty())
        return fail("secret spec " + quote(spec) + ": no source name");
    if (!isValidSecretName(*source))
        return fail("secret spec " + quote(spec) + ": name " + quote(*source) + " does not match " +
                    std::string(kSecretNameGrammar));

    const auto inSpec = [&](const Error& e) { return tl::unexpected(wrap(e, "secret spec " + quote(spec))); };
    SecretRef ref;
    ref.source = std::string(*source);
    auto cleaned = cleanTarget(*source, target.value_or(""));
    if (!cleaned) return inSpec(cleaned.error());
    ref.target = std::move(*cleaned);
    if (uid) {
        auto v = parseId("uid", *uid);
        if (!v) return inSpec(v.error());
        ref.uid = *v;
    }
    if (gid) {
        auto v = parseId("gid", *gid);
        if (!v) return inSpec(v.error());
        ref.gid = *v;
    }
    if (mode) {
        auto v = parseMode(*mode);
        if (!v) return inSpec(v.error());
        ref.mode = *v;
    }
    return ref;
}

std::string formatSecretRef(const SecretRef& ref) {
    std::string mode = "0";
    for (int shift = 6; shift >= 0; shift -= 3) mode += static_cast<char>('0' + ((ref.mode >> shift) & 7));
    return "source=" + ref.source + ",target=" + ref.target + ",uid=" + std::to_string(ref.uid) +
           ",gid=" + std::to_string(ref.gid) + ",mode=" + mode;
}

Result<std::vector<SecretRef>> parseSecretRefs(std::string_view annotation) {
    std::vector<SecretRef> refs;
    std::size_t start = 0;
    while (start <= annotation.size()) {
        const std::size_t end = std::min(annotation.find(';', start), annotation.size());
        const std::string_view spec = trim(annotation.substr(start, end - start));
        start = end + 1;
        if (spec.empty()) continue;
        auto ref = parseSecretRef(spec);
        if (!ref) return propagate(ref);
        refs.push_back(std::move(*ref));
    }
    if (refs.empty()) return fail("the secrets annotation names no secret");
    if (auto ok = validateRefs(refs); !ok) return propagate(ok);
    return refs;
}

Result<void> validateRefs(const std::vector<SecretRef>& refs) {
    if (refs.size() > kMaxRefs)
        return fail("a task may reference at most " + std::to_string(kMaxRefs) + " secrets, not " +
                    std::to_string(refs.size()));
    // Linear in the number of references: the annotation comes from whoever
    // creates the container, and the agent serves every container.
    std::unordered_map<std::string_view, const SecretRef*> byTarget;
    for (const auto& ref : refs) {
        const auto [it, fresh] = byTarget.emplace(ref.target, &ref);
        if (!fresh)
            return fail("secrets " + quote(it->second->source) + " and " + quote(ref.source) +
                        " both target " + quote(ref.target));
    }
    for (const auto& ref : refs) {
        const std::string_view target = ref.target;
        for (std::size_t slash = target.find('/', 1); slash != std::string_view::npos;
             slash = target.find('/', slash + 1)) {
            const auto parent = byTarget.find(target.substr(0, slash));
            if (parent != byTarget.end())
                return fail("target " + quote(ref.target) + " of secret " + quote(ref.source) +
                            " lies inside target " + quote(parent->second->target) + " of secret " +
                            quote(parent->second->source));
        }
    }
    return {};
}

Result<void> checkPayloadSize(std::string_view name, std::size_t size, std::size_t maxBytes) {
    if (size == 0) return fail("secret " + quote(name) + " is empty");
    if (size > maxBytes)
        return fail("secret " + quote(name) + " is " + std::to_string(size) +
                    " bytes, over the limit of " + std::to_string(maxBytes));
    return {};
}

}  // namespace secretshim::mountfs
