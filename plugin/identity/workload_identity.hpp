// Who a container provably is: the integration that started it (from the
// hook's registered arguments, never from an annotation) and the facts that
// integration vouches for. docs/trust-model.md says why each is trusted.
// The hook derives it (plugin/hook/workload.cpp), sends it with its create
// request, and the agent grants secrets to it (grant_rule.hpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

// How a container was started, as the hook's --integration argument says.
enum class Integration {
    bundle,         // runc or crun on a bundle root wrote (the default)
    containerd,     // ctr run through secretshim-runtime (root wrote the command)
    podman,         // Podman, through the packaged hooks.d file
    containerdCri,  // containerd's CRI plugin (Kubernetes)
    crio,           // CRI-O (Kubernetes), through its own hooks directory
    nri,            // containerd >= 1.7 or CRI-O (Kubernetes), through secretshim-nri: the
                    // runtime told the agent who the container is before it was created
};

std::optional<Integration> parseIntegration(std::string_view name);
std::string_view integrationName(Integration integration);

struct WorkloadIdentity {
    enum class Kind {
        root,        // started directly by root on this node (bundle, containerd)
        podman,      // a Podman container, by the name root gave it
        kubernetes,  // a container of a Kubernetes pod
    };
    Kind kind = Kind::root;
    Integration integration = Integration::bundle;
    std::string name;       // podman: the container's name
    std::string ns;         // kubernetes: the pod's namespace
    std::string pod;        // kubernetes: the pod's name
    std::string podUid;     // kubernetes: the pod's uid
    std::string container;  // kubernetes: the container's name in the pod
    std::string image;      // kubernetes: the image it runs (for logs, not for grants)

    // One line for messages: "kubernetes pod tenant-a/web container app".
    std::string describe() const;
    nlohmann::json toJson() const;
    // Refuses a missing or malformed field: the agent trusts the hook, but
    // a request is still parsed, never assumed.
    static Result<WorkloadIdentity> fromJson(const nlohmann::json& j);

    bool operator==(const WorkloadIdentity&) const = default;
};

WorkloadIdentity::Kind kindOf(Integration integration);
// A name an identity may hold (a namespace, pod, uid, container or Podman
// name): [A-Za-z0-9._-], 1 to 253 characters. Nothing a grant rule's glob
// or separator could mean, nothing that could start a second log line.
bool isIdentityName(std::string_view s);

}  // namespace secretshim::plugin
