#include "plugin/hook/oci_state.hpp"

#include <nlohmann/json.hpp>

namespace secretshim::plugin {

using nlohmann::json;

Result<OciState> parseOciState(std::string_view text) {
    const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return fail("the OCI state on stdin is not a JSON object");
    OciState state;
    const auto id = doc.find("id");
    if (id == doc.end() || !id->is_string() || id->get_ref<const std::string&>().empty())
        return fail("the OCI state has no container id");
    state.id = id->get<std::string>();
    if (const auto pid = doc.find("pid"); pid != doc.end()) {
        if (!pid->is_number_integer() || pid->get<long long>() < 0 || pid->get<long long>() > 0x3fffffff)
            return fail("the OCI state has an invalid pid");
        state.pid = static_cast<pid_t>(pid->get<long long>());
    }
    if (const auto bundle = doc.find("bundle"); bundle != doc.end()) {
        if (!bundle->is_string()) return fail("the OCI state has an invalid bundle");
        state.bundle = bundle->get<std::string>();
    }
    if (const auto status = doc.find("status"); status != doc.end()) {
        if (!status->is_string()) return fail("the OCI state has an invalid status");
        state.status = status->get<std::string>();
    }
    if (const auto ann = doc.find("annotations"); ann != doc.end() && !ann->is_null()) {
        if (!ann->is_object()) return fail("the OCI state's annotations are not an object");
        for (const auto& [key, value] : ann->items()) {
            if (!value.is_string()) return fail("annotation " + quote(key) + " is not a string");
            state.annotations.emplace(key, value.get<std::string>());
        }
    }
    return state;
}

bool isPodSandbox(const OciState& state) {
    for (const char* key : {"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}) {
        const auto it = state.annotations.find(key);
        if (it != state.annotations.end() && it->second == "sandbox") return true;
    }
    return false;
}

Result<void> checkNoSplitReference(const OciState& state) {
    for (const char* key : {"source", "target", "uid", "gid", "mode"})
        if (state.annotations.count(key))
            return fail(std::string("the annotation ") + quote(key) +
                        " looks like a piece of a secret reference split at a comma (Podman: quote it, "
                        "--annotation '\"io.secretshim.secrets=...\"')");
    return {};
}

Result<std::string> parseRootfsPath(std::string_view configJson, const std::string& bundle, BundleFacts* facts) {
    const json doc = json::parse(configJson, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return fail("the bundle's config.json is not a JSON object");
    const auto root = doc.find("root");
    if (root == doc.end() || !root->is_object()) return fail("config.json has no root");
    const auto path = root->find("path");
    if (path == root->end() || !path->is_string() || path->get_ref<const std::string&>().empty())
        return fail("config.json has no root.path");
    // The facts go out only with the path: on a failure *facts is untouched.
    BundleFacts found;
    const auto ro = root->find("readonly");
    found.rootReadOnly = ro != root->end() && ro->is_boolean() && ro->get<bool>();
    const auto process = doc.find("process");
    if (process != doc.end() && process->is_object()) {
        const auto caps = process->find("capabilities");
        if (caps != process->end() && caps->is_object()) {
            const auto bounding = caps->find("bounding");
            if (bounding != caps->end() && bounding->is_array())
                for (const auto& c : *bounding)
                    if (c == "CAP_SYS_ADMIN") found.mayHoldSysAdmin = true;
        }
    }
    std::string p = path->get<std::string>();
    if (p.front() != '/') {
        if (bundle.empty() || bundle.front() != '/') return fail("the bundle path is not absolute");
        p = bundle + "/" + p;
    }
    if (facts) *facts = found;
    return p;
}

}  // namespace secretshim::plugin
