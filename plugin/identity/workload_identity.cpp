#include "plugin/identity/workload_identity.hpp"

#include <array>
#include <utility>

#include "plugin/protocol/json_fields.hpp"

namespace secretshim::plugin {

using nlohmann::json;

namespace {

constexpr std::array<std::pair<Integration, std::string_view>, 6> kIntegrations{{
    {Integration::bundle, "bundle"},
    {Integration::containerd, "containerd"},
    {Integration::podman, "podman"},
    {Integration::containerdCri, "containerd-cri"},
    {Integration::crio, "cri-o"},
    {Integration::nri, "nri"},
}};

constexpr std::size_t kMaxName = 253;  // a DNS subdomain: the longest Kubernetes name
constexpr std::size_t kMaxImage = 4096;

}  // namespace

bool isIdentityName(std::string_view s) {
    if (s.empty() || s.size() > kMaxName) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    return true;
}

namespace {

Result<std::string> nameField(const json& j, const char* key) {
    const std::string* name = stringAt(j, key);
    if (!name || !isIdentityName(*name)) return fail(std::string("the identity's ") + key + " is missing or invalid");
    return *name;
}

}  // namespace

std::optional<Integration> parseIntegration(std::string_view name) {
    for (const auto& [value, text] : kIntegrations)
        if (text == name) return value;
    return std::nullopt;
}

std::string_view integrationName(Integration integration) {
    for (const auto& [value, text] : kIntegrations)
        if (value == integration) return text;
    return "?";
}

WorkloadIdentity::Kind kindOf(Integration integration) {
    switch (integration) {
        case Integration::podman: return WorkloadIdentity::Kind::podman;
        case Integration::containerdCri:
        case Integration::crio:
        case Integration::nri: return WorkloadIdentity::Kind::kubernetes;
        case Integration::bundle:
        case Integration::containerd: break;
    }
    return WorkloadIdentity::Kind::root;
}

std::string WorkloadIdentity::describe() const {
    switch (kind) {
        case Kind::kubernetes: return "kubernetes pod " + ns + "/" + pod + " container " + container;
        case Kind::podman: return "podman container " + name;
        case Kind::root: break;
    }
    return "a container started by root (" + std::string(integrationName(integration)) + ")";
}

json WorkloadIdentity::toJson() const {
    json j = {{"integration", integrationName(integration)}};
    if (kind == Kind::podman) j["name"] = name;
    if (kind == Kind::kubernetes) {
        j["namespace"] = ns;
        j["pod"] = pod;
        j["pod_uid"] = podUid;
        j["container"] = container;
        if (!image.empty()) j["image"] = image;
    }
    return j;
}

Result<WorkloadIdentity> WorkloadIdentity::fromJson(const json& j) {
    if (!j.is_object()) return fail("the request carries no identity");
    const auto integration = j.find("integration");
    const auto which = integration != j.end() && integration->is_string()
                           ? parseIntegration(integration->get_ref<const std::string&>())
                           : std::nullopt;
    if (!which) return fail("the identity's integration is missing or unknown");
    WorkloadIdentity id;
    id.integration = *which;
    id.kind = kindOf(*which);
    if (id.kind == Kind::podman) {
        auto name = nameField(j, "name");
        if (!name) return propagate(name);
        id.name = std::move(*name);
    }
    if (id.kind == Kind::kubernetes) {
        for (auto [key, out] : {std::pair{"namespace", &id.ns}, std::pair{"pod", &id.pod},
                                std::pair{"pod_uid", &id.podUid}, std::pair{"container", &id.container}}) {
            auto value = nameField(j, key);
            if (!value) return propagate(value);
            *out = std::move(*value);
        }
        const auto image = j.find("image");
        if (image != j.end()) {
            if (!image->is_string() || image->get_ref<const std::string&>().size() > kMaxImage)
                return fail("the identity's image is invalid");
            id.image = image->get<std::string>();
        }
    }
    return id;
}

}  // namespace secretshim::plugin
