// Fuzzes the --secret spec and annotation parser (mountfs/secret_ref) and
// the view planner (mountfs/view_layout). The annotation comes from whoever
// may create a container, so every accepted reference is re-checked here
// against the rules the mount code relies on, independently of the parser.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/secret_ref.hpp"
#include "mountfs/view_layout.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace secretshim;
using namespace secretshim::mountfs;

namespace {

bool under(std::string_view path, std::string_view dir) {
    return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/');
}

// The target rules, restated: absolute, clean, bounded, and nowhere the
// kernel's pseudo-filesystems or the secrets directory itself could be hit.
void checkTarget(const std::string& t) {
    FUZZ_CHECK_MSG(!t.empty() && t.front() == '/', t);
    FUZZ_CHECK_MSG(t.size() <= 4095, t);
    FUZZ_CHECK_MSG(t.find('\0') == std::string::npos, t);
    FUZZ_CHECK_MSG(t.find("//") == std::string::npos, t);
    FUZZ_CHECK_MSG(t.back() != '/', t);
    for (std::size_t start = 1; start <= t.size();) {
        const std::size_t end = std::min(t.find('/', start), t.size());
        const std::string_view part = std::string_view(t).substr(start, end - start);
        FUZZ_CHECK_MSG(!part.empty() && part != "." && part != "..", t);
        FUZZ_CHECK_MSG(part.size() <= 255, t);
        start = end + 1;
    }
    for (std::string_view dir : {"/proc", "/sys", "/dev"}) FUZZ_CHECK_MSG(!under(t, dir), t);
    // Neither the secrets directory, nor one of its parents (which would hide it).
    FUZZ_CHECK_MSG(!under(kSecretsDir, t), t);
}

void checkRef(const SecretRef& ref) {
    FUZZ_CHECK_MSG(isValidSecretName(ref.source), ref.source);
    checkTarget(ref.target);
    FUZZ_CHECK(ref.mode <= 0777);
    FUZZ_CHECK(ref.uid <= 4294967294u && ref.gid <= 4294967294u);
}

std::string octal(std::uint32_t mode) {
    std::string out;
    do {
        out.insert(out.begin(), static_cast<char>('0' + (mode & 7)));
        mode >>= 3;
    } while (mode != 0);
    return "0" + out;
}

// The long form of a reference; parsing it must give the reference back.
std::string format(const SecretRef& ref) {
    return "source=" + ref.source + ",target=" + ref.target + ",uid=" + std::to_string(ref.uid) +
           ",gid=" + std::to_string(ref.gid) + ",mode=" + octal(ref.mode);
}

void checkError(const Error& error) {
    FUZZ_CHECK_MSG(fuzz::isOneLine(error.message), error.message);
    FUZZ_CHECK(error.code == 0);  // parsing makes no system call
}

// The proper parents of an absolute or relative path, nearest last:
// "dir/a/b" gives "dir", "dir/a"; "/a/b" gives "/a".
std::vector<std::string> parents(const std::string& path) {
    std::vector<std::string> out;
    for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1))
        out.push_back(path.substr(0, slash));
    return out;
}

// A view's layout: every reference in order, one file each, directories
// created parents first, and no path both a file and a directory. Sets keep
// these checks O(n log n): a 64 KiB annotation holds ~10,000 references.
void checkLayout(const std::vector<SecretRef>& refs, const ViewLayout& layout) {
    FUZZ_CHECK(layout.entries.size() == refs.size());
    const std::string secretsPrefix = std::string(kSecretsDir) + "/";
    const std::string dirPrefix = std::string(kViewDir) + "/";
    std::set<std::string> files;
    std::set<std::string> needed;  // parents of files inside dir/ and file/
    bool anyInDirectory = false;
    for (std::size_t i = 0; i < refs.size(); ++i) {
        const ViewEntry& e = layout.entries[i];
        FUZZ_CHECK(e.ref == refs[i]);
        const bool inSecrets = refs[i].target.rfind(secretsPrefix, 0) == 0;
        FUZZ_CHECK_MSG(e.inDirectory == inSecrets, refs[i].target);
        if (inSecrets)
            FUZZ_CHECK_MSG(e.file == dirPrefix + refs[i].target.substr(secretsPrefix.size()), e.file);
        else
            FUZZ_CHECK_MSG(e.file == std::string(kViewFiles) + refs[i].target, e.file);
        for (auto& p : parents(e.file))
            if (p != kViewDir && p != kViewFiles) needed.insert(std::move(p));
        FUZZ_CHECK_MSG(files.insert(e.file).second, e.file);
        anyInDirectory = anyInDirectory || e.inDirectory;
    }
    FUZZ_CHECK(layout.hasDirectoryMount() == anyInDirectory);
    // Exactly the needed directories, each once, never a file, parents first.
    std::set<std::string> planned;
    for (const std::string& dir : layout.directories) {
        FUZZ_CHECK_MSG(needed.count(dir) == 1, dir);
        FUZZ_CHECK_MSG(files.count(dir) == 0, dir);
        const std::string parent = dir.substr(0, dir.rfind('/'));
        FUZZ_CHECK_MSG(parent == kViewDir || parent == kViewFiles || planned.count(parent) == 1, dir);
        FUZZ_CHECK_MSG(planned.insert(dir).second, dir);
    }
    FUZZ_CHECK(planned == needed);
}

void fuzzSpec(std::string_view spec) {
    const auto ref = parseSecretRef(spec);
    if (!ref) return checkError(ref.error());
    checkRef(*ref);
    const std::string again = format(*ref);
    const auto reparsed = parseSecretRef(again);
    FUZZ_CHECK_MSG(reparsed.has_value(), again);
    FUZZ_CHECK_MSG(*reparsed == *ref, again);
}

void fuzzAnnotation(std::string_view annotation) {
    const auto refs = parseSecretRefs(annotation);
    if (!refs) return checkError(refs.error());
    FUZZ_CHECK(!refs->empty());
    std::string joined;
    for (const SecretRef& ref : *refs) {
        checkRef(ref);
        FUZZ_CHECK_MSG(ref.target.find(';') == std::string::npos, ref.target);
        joined += (joined.empty() ? "" : ";") + format(ref);
    }
    // No two targets alike, none inside another.
    std::set<std::string> targets;
    for (const SecretRef& ref : *refs) FUZZ_CHECK_MSG(targets.insert(ref.target).second, ref.target);
    for (const SecretRef& ref : *refs)
        for (const std::string& p : parents(ref.target)) FUZZ_CHECK_MSG(targets.count(p) == 0, ref.target);
    FUZZ_CHECK(validateRefs(*refs).has_value());
    const auto reparsed = parseSecretRefs(joined);
    FUZZ_CHECK_MSG(reparsed.has_value() && *reparsed == *refs, joined);

    // A view holds a target outside /run/secrets at file/<target>, a path
    // of at most 4095 bytes: the one reason to refuse what parsed.
    const auto layout = planView(*refs);
    const bool tooLong = std::any_of(refs->begin(), refs->end(), [](const SecretRef& r) {
        return r.target.rfind(std::string(kSecretsDir) + "/", 0) != 0 && r.target.size() > 4091;
    });
    FUZZ_CHECK_MSG(layout.has_value() != tooLong, layout ? std::string() : layout.error().message);
    if (layout) checkLayout(*refs, *layout);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzzSpec(input);
    fuzzAnnotation(input);
    return 0;
}
