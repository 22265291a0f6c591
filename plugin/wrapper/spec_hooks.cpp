#include "plugin/wrapper/spec_hooks.hpp"

#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

using nlohmann::json;

namespace {

json hookEntry(const HookSettings& settings, const char* stage) {
    json args = json::array({"secretshim-hook", "--integration", settings.integration});
    if (!settings.socket.empty()) {
        args.push_back("--socket");
        args.push_back(settings.socket);
    }
    args.push_back(stage);
    return {{"path", settings.hookPath}, {"args", args}, {"timeout", settings.timeout}};
}

bool hasHook(const json& list, const std::string& path) {
    for (const auto& h : list)
        if (h.is_object() && h.contains("path") && h["path"] == path) return true;
    return false;
}

}  // namespace

bool specAsksForSecrets(const json& spec) {
    if (!spec.is_object()) return false;
    const auto ann = spec.find("annotations");
    if (ann == spec.end() || !ann->is_object()) return false;
    // A CRI pod's pause container gets the pod's annotations but no
    // secrets (the hook skips it the same way: plugin/hook/oci_state.cpp).
    for (const char* key : {"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"})
        if (ann->contains(key) && (*ann)[key] == "sandbox") return false;
    // Any key of ours: a Kubernetes container asks with keys suffixed with
    // its name (io.secretshim.secrets.<container>); the hook decides.
    for (const auto& [key, value] : ann->items())
        if (key.rfind("io.secretshim.", 0) == 0) return true;
    return false;
}

Result<bool> addSecretshimHooks(json& spec, const HookSettings& settings) {
    if (!spec.is_object()) return fail("config.json is not a JSON object");
    if (settings.hookPath.empty() || settings.hookPath.front() != '/')
        return fail("the hook path " + quote(settings.hookPath) + " is not absolute");
    if (spec.contains("hooks") && !spec["hooks"].is_object() && !spec["hooks"].is_null())
        return fail("config.json: hooks is not an object");
    json hooks = spec.contains("hooks") && spec["hooks"].is_object() ? spec["hooks"] : json::object();
    bool changed = false;
    for (const char* stage : {"createRuntime", "poststop"}) {
        if (hooks.contains(stage) && !hooks[stage].is_array())
            return fail(std::string("config.json: hooks.") + stage + " is not an array");
        // Registered already (by a base spec, or at the older prestart):
        // a second run at create would ask the agent twice.
        if (std::string(stage) == "createRuntime" && hooks.contains("prestart") && hooks["prestart"].is_array() &&
            hasHook(hooks["prestart"], settings.hookPath))
            continue;
        json& list = hooks[stage];
        if (list.is_null()) list = json::array();
        if (hasHook(list, settings.hookPath)) continue;
        list.push_back(hookEntry(settings, stage));
        changed = true;
    }
    if (changed) spec["hooks"] = std::move(hooks);
    return changed;
}

}  // namespace secretshim::plugin
