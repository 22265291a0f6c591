// Fuzzes the readers of runtime input: the hook's (plugin/hook/oci_state),
// the OCI state on stdin and root.path from the bundle's config.json, and
// the containerd wrapper's rewrite of config.json (plugin/wrapper). All are
// JSON; the annotations are chosen by whoever creates the container.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "plugin/hook/oci_state.hpp"
#include "plugin/wrapper/spec_hooks.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;

namespace {

void checkError(const Error& error) {
    FUZZ_CHECK_MSG(fuzz::isOneLine(error.message), error.message);
    FUZZ_CHECK(error.code == 0);
}

// What a runtime would write for this state; reading it back must give the
// same state.
std::string format(const OciState& s) {
    json doc = {{"ociVersion", "1.0.2"}, {"id", s.id}, {"status", "creating"}, {"pid", s.pid}, {"bundle", s.bundle}};
    doc["annotations"] = json::object();
    for (const auto& [key, value] : s.annotations) doc["annotations"][key] = value;
    return doc.dump();
}

void fuzzState(std::string_view text) {
    const auto state = parseOciState(text);
    if (!state) return checkError(state.error());
    FUZZ_CHECK(!state->id.empty());
    FUZZ_CHECK(state->pid >= 0 && state->pid <= 0x3fffffff);
    std::string again;
    try {
        again = format(*state);  // throws on a string that is not UTF-8
    } catch (const json::exception& e) {
        FUZZ_CHECK_MSG(false, e.what());
    }
    const auto reparsed = parseOciState(again);
    FUZZ_CHECK_MSG(reparsed.has_value(), again);
    FUZZ_CHECK(reparsed->id == state->id && reparsed->pid == state->pid && reparsed->bundle == state->bundle &&
               reparsed->annotations == state->annotations);
}

void fuzzRootfs(std::string_view text, const std::string& bundle) {
    const auto rootfs = parseRootfsPath(text, bundle);
    if (!rootfs) return checkError(rootfs.error());
    FUZZ_CHECK_MSG(!rootfs->empty() && rootfs->front() == '/', *rootfs);
    // Either root.path itself (absolute) or bundle + "/" + root.path.
    const json doc = json::parse(text, nullptr, false);
    const std::string path = doc.at("root").at("path").get<std::string>();
    if (path.front() == '/')
        FUZZ_CHECK(*rootfs == path);
    else
        FUZZ_CHECK(!bundle.empty() && bundle.front() == '/' && *rootfs == bundle + "/" + path);
}

// The wrapper adds its hooks once: a second pass changes nothing, and a
// refused spec is left as it was.
void fuzzSpec(std::string_view text) {
    json spec = json::parse(text, nullptr, false);
    if (spec.is_discarded()) return;
    (void)specAsksForSecrets(spec);
    const json before = spec;
    const HookSettings settings{"/usr/libexec/secretshim/secretshim-hook", "", 10};
    const auto changed = addSecretshimHooks(spec, settings);
    if (!changed) {
        checkError(changed.error());
        FUZZ_CHECK(spec == before);
        return;
    }
    FUZZ_CHECK(*changed == (spec != before));
    const auto again = addSecretshimHooks(spec, settings);
    FUZZ_CHECK(again.has_value() && !*again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        fuzzState(input);
        // The hook joins a relative root.path to the bundle from the state.
        fuzzRootfs(input, "/run/containerd/bundle");
        fuzzRootfs(input, "");
        fuzzRootfs(input, "relative/bundle");
        fuzzSpec(input);
    } catch (const std::exception& e) {
        // The hook catches nothing: an exception here ends it with SIGABRT.
        FUZZ_CHECK_MSG(false, std::string("exception escaped: ") + e.what());
    }
    return 0;
}
