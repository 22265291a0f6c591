#include "mountfs/windows_target.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include "mountfs/base/trim.hpp"

namespace secretshim::mountfs {
namespace {

// Device names Win32 maps to devices in any directory, with or without an
// extension ("nul.txt" is NUL). The superscript digits are devices too.
constexpr std::array<std::string_view, 6> kDevices = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"};
constexpr std::array<std::string_view, 13> kDeviceDigits = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\xC2\xB9", "\xC2\xB2", "\xC2\xB3"};
constexpr std::size_t kMaxComponent = 255;  // UTF-16 units, NTFS

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool equalNoCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return upper(x) == upper(y); });
}

bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The length in UTF-16 units, or nothing for invalid UTF-8 (overlong
// forms, surrogates and values past U+10FFFF included).
std::optional<std::size_t> utf16Length(std::string_view s) {
    std::size_t units = 0;
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        // Continuation bytes after the lead byte, and the lead's payload bits.
        std::size_t extra = 0;
        std::uint32_t cp = b;
        if (b >= 0xF0 && b <= 0xF4) {
            extra = 3;
            cp = b & 0x07;
        } else if (b >= 0xE0 && b <= 0xEF) {
            extra = 2;
            cp = b & 0x0F;
        } else if (b >= 0xC2 && b <= 0xDF) {
            extra = 1;
            cp = b & 0x1F;
        } else if (b >= 0x80) {
            return std::nullopt;  // a stray continuation byte, or an overlong or out-of-range lead
        }
        if (extra > 0 && i + extra >= s.size()) return std::nullopt;  // truncated sequence
        for (std::size_t k = 1; k <= extra; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xC0) != 0x80) return std::nullopt;
            cp = (cp << 6) | (c & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return std::nullopt;
        units += cp >= 0x10000 ? 2 : 1;
        i += extra + 1;
    }
    return units;
}

bool isDeviceName(std::string_view component) {
    // Win32 ignores what follows the first dot and trailing spaces before it.
    std::string_view stem = component.substr(0, std::min(component.find('.'), component.size()));
    while (!stem.empty() && stem.back() == ' ') stem.remove_suffix(1);
    for (std::string_view device : kDevices)
        if (equalNoCase(stem, device)) return true;
    if (stem.size() < 4) return false;
    const std::string_view head = stem.substr(0, 3);
    if (!equalNoCase(head, "COM") && !equalNoCase(head, "LPT")) return false;
    const std::string_view digit = stem.substr(3);
    return std::find(kDeviceDigits.begin(), kDeviceDigits.end(), digit) != kDeviceDigits.end();
}

// Why a component is refused, or nothing.
std::optional<std::string> componentProblem(std::string_view part) {
    if (part.empty()) return "is not clean (\"\\\\\")";
    if (part == "." || part == "..") return "is not clean (" + quote(part) + ")";
    for (char c : part) {
        if (static_cast<unsigned char>(c) < 0x20) return std::string("contains a control character");
        if (c == ':') return std::string("names an alternate data stream (\":\" after the drive)");
        if (std::string_view("<>\"|?*").find(c) != std::string_view::npos)
            return "contains the reserved character " + quote(std::string_view(&c, 1));
    }
    if (part.back() == '.' || part.back() == ' ')
        return "has the component " + quote(part) + " ending in a dot or a space";
    if (isDeviceName(part)) return "names the device " + quote(part);
    if (*utf16Length(part) > kMaxComponent) return std::string("has a component longer than 255 characters");
    return std::nullopt;
}

Result<std::string> cleanTarget(std::string_view raw, std::string_view source) {
    const auto bad = [&](std::string_view why) {
        return fail("target " + quote(raw) + " " + std::string(why));
    };
    std::string target(raw);
    std::replace(target.begin(), target.end(), '/', '\\');
    if (target.find('\0') != std::string::npos) return bad("contains a NUL byte");
    if (!utf16Length(target)) return bad("is not valid UTF-8");
    if (target.empty()) {
        target = std::string(kWindowsSecretsDir) + "\\" + std::string(source);
    } else if (target.size() >= 2 && isLetter(target[0]) && target[1] == ':') {
        if (target.size() == 2 || target[2] != '\\')
            return bad("is relative to a drive's current directory (\"C:x\")");
        if (upper(target[0]) != 'C') return bad("is not on drive C: (the container's filesystem)");
        target[0] = 'C';
    } else if (target.front() == '\\') {
        return bad("is rooted but names no drive (\"\\x\", UNC and \"\\\\?\\\" paths are refused)");
    } else {
        target = std::string(kWindowsSecretsDir) + "\\" + target;
    }

    const std::string_view rest = std::string_view(target).substr(3);
    if (rest.empty()) return bad("is not a file path");
    if (rest.back() == '\\') return bad("is not clean (trailing \"\\\")");
    for (std::size_t start = 0; start <= rest.size();) {
        const std::size_t end = std::min(rest.find('\\', start), rest.size());
        if (auto why = componentProblem(rest.substr(start, end - start))) return bad(*why);
        start = end + 1;
    }
    if (*utf16Length(target) > kWindowsMaxTarget)
        return bad("is longer than " + std::to_string(kWindowsMaxTarget) + " characters");

    for (std::string_view dir : {kWindowsSecretsDir, kWindowsInternalDir}) {
        if (sameWindowsPath(target, dir)) return bad("is not a file path");
        if (isInsideWindowsPath(dir, target)) return bad("would hide " + std::string(dir));
    }
    if (isInsideWindowsPath(target, kWindowsInternalDir))
        return bad("is inside " + std::string(kWindowsInternalDir) + ", which secretshim manages");
    return target;
}

}  // namespace

Result<std::string> cleanWindowsTarget(std::string_view raw, std::string_view source) {
    return cleanTarget(trim(raw), source);
}

bool sameWindowsPath(std::string_view a, std::string_view b) { return equalNoCase(a, b); }

bool isInsideWindowsPath(std::string_view path, std::string_view dir) {
    return path.size() > dir.size() + 1 && path[dir.size()] == '\\' &&
           equalNoCase(path.substr(0, dir.size()), dir);
}

std::vector<std::string> windowsPathComponents(std::string_view path) {
    std::vector<std::string> parts;
    if (path.size() <= 3) return parts;
    const std::string_view rest = path.substr(3);
    for (std::size_t start = 0; start <= rest.size();) {
        const std::size_t end = std::min(rest.find('\\', start), rest.size());
        parts.emplace_back(rest.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

std::string windowsLinkText(std::string_view link, std::string_view file) {
    const std::vector<std::string> from = windowsPathComponents(link);
    const std::vector<std::string> to = windowsPathComponents(file);
    // Compare the link's parent directories with the file's path.
    const std::size_t parents = from.empty() ? 0 : from.size() - 1;
    std::size_t common = 0;
    while (common < parents && common + 1 < to.size() && equalNoCase(from[common], to[common])) ++common;
    std::string text;
    for (std::size_t i = common; i < parents; ++i) text += "..\\";
    for (std::size_t i = common; i < to.size(); ++i) {
        text += to[i];
        if (i + 1 < to.size()) text += '\\';
    }
    return text;
}

std::string windowsInternalFile(std::size_t index) {
    return std::string(kWindowsInternalDir) + "\\" + std::to_string(index);
}

Result<SecretRef> parseWindowsSecretRef(std::string_view spec) {
    spec = trim(spec);
    // The Linux parser checks the syntax, the keys and the name; it sees the
    // spec with each target's value replaced by a placeholder it accepts
    // (a Windows path is no Linux target), and its messages are given back
    // with the spec as written.
    std::string forLinux;
    std::optional<std::string_view> target;
    const bool shortForm =
        spec.find('=') == std::string_view::npos && spec.find(',') == std::string_view::npos;
    if (shortForm) {
        forLinux = std::string(spec);
    } else {
        for (std::size_t start = 0; start <= spec.size();) {
            const std::size_t end = std::min(spec.find(',', start), spec.size());
            const std::string_view field = spec.substr(start, end - start);
            if (start > 0) forLinux += ',';
            start = end + 1;
            const std::size_t eq = field.find('=');
            const std::string_view key = eq == std::string_view::npos ? "" : trim(field.substr(0, eq));
            if (key == "uid" || key == "gid" || key == "mode")
                return fail("secret spec " + quote(spec) + ": " + std::string(key) +
                            " is not supported on Windows (uid, gid and mode have no meaning there)");
            if (key == "target") {
                if (!target) target = trim(field.substr(eq + 1));
                forLinux += "target=t";  // a second one is reported as a duplicate
            } else {
                forLinux += field;
            }
        }
    }
    auto ref = parseSecretRef(forLinux);
    if (!ref) {
        Error error = ref.error();
        const std::string asParsed = "secret spec " + quote(forLinux);
        if (error.message.rfind(asParsed, 0) == 0)
            error.message = "secret spec " + quote(spec) + error.message.substr(asParsed.size());
        return tl::unexpected(std::move(error));
    }
    auto cleaned = cleanTarget(target.value_or(""), ref->source);
    if (!cleaned) return propagate(cleaned, "secret spec " + quote(spec));
    ref->target = std::move(*cleaned);
    return ref;
}

Result<std::vector<SecretRef>> parseWindowsSecretRefs(std::string_view annotation) {
    std::vector<SecretRef> refs;
    for (std::size_t start = 0; start <= annotation.size();) {
        const std::size_t end = std::min(annotation.find(';', start), annotation.size());
        const std::string_view spec = trim(annotation.substr(start, end - start));
        start = end + 1;
        if (spec.empty()) continue;
        auto ref = parseWindowsSecretRef(spec);
        if (!ref) return propagate(ref);
        refs.push_back(std::move(*ref));
    }
    if (refs.empty()) return fail("the secrets annotation names no secret");
    if (auto ok = validateWindowsRefs(refs); !ok) return propagate(ok);
    return refs;
}

Result<void> validateWindowsRefs(const std::vector<SecretRef>& refs) {
    for (const SecretRef& ref : refs) {
        if (!isValidSecretName(ref.source)) return fail("secret name " + quote(ref.source) + " is not valid");
        if (ref.uid != 0 || ref.gid != 0 || ref.mode != kDefaultMode)
            return fail("secret " + quote(ref.source) + ": uid, gid and mode are not supported on Windows");
        auto cleaned = cleanTarget(ref.target, ref.source);
        if (!cleaned) return propagate(cleaned, "secret " + quote(ref.source));
        if (*cleaned != ref.target)
            return fail("secret " + quote(ref.source) + ": target " + quote(ref.target) +
                        " is not in canonical form " + quote(*cleaned));
    }
    for (std::size_t i = 0; i < refs.size(); ++i) {
        for (std::size_t j = 0; j < refs.size(); ++j) {
            if (i == j) continue;
            const SecretRef& a = refs[i];
            const SecretRef& b = refs[j];
            if (i < j && sameWindowsPath(a.target, b.target))
                return fail("secrets " + quote(a.source) + " and " + quote(b.source) +
                            " both target " + quote(a.target) + " (Windows paths ignore case)");
            if (isInsideWindowsPath(b.target, a.target))
                return fail("target " + quote(b.target) + " of secret " + quote(b.source) +
                            " lies inside target " + quote(a.target) + " of secret " + quote(a.source));
        }
    }
    return {};
}

Result<ViewLayout> planWindowsView(const std::vector<SecretRef>& refs) {
    if (auto ok = validateWindowsRefs(refs); !ok) return propagate(ok);
    ViewLayout layout;
    for (std::size_t i = 0; i < refs.size(); ++i)
        layout.entries.push_back(ViewEntry{refs[i], windowsInternalFile(i), false});
    return layout;
}

}  // namespace secretshim::mountfs
