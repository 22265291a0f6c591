// What the hook tells the agent about a container: who it is (an identity
// from facts its author cannot set) and what it asks for (the annotations
// that are this container's request). docs/trust-model.md explains each.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/hook/oci_state.hpp"
#include "plugin/identity/workload_identity.hpp"

namespace secretshim::plugin {

// Whether any annotation is one of ours (io.secretshim.*): the fast path's
// one lookup. A container without one never reaches the agent.
bool hasSecretshimAnnotation(const OciState& state);

// The container's request. In Kubernetes a pod's annotations reach every
// one of its containers, injected sidecars too: there only the keys
// suffixed with the container's name count (io.secretshim.secrets.<name>,
// io.secretshim.task.<name>), and the plain keys are refused. Elsewhere the
// plain keys count and suffixed ones are ignored. Neither key: nothing
// asked (a key with an empty value asks, and the agent refuses it).
struct SecretsRequest {
    std::optional<std::string> secrets;  // Docker-style specs separated by ';'
    std::optional<std::string> task;     // cluster mode: the task to claim
    bool empty() const { return !secrets && !task; }
};
Result<SecretsRequest> requestOf(Integration integration, const OciState& state);

// What the hook reads besides the OCI state, for the integrations that need
// it (gatherFacts() reads them; identify() only decides, so it is tested
// on recorded facts).
struct WorkloadFacts {
    std::string sandboxSpec;             // containerd-cri: the pod sandbox's config.json
    std::string cgroup;                  // podman, cri-o: /proc/<init>/cgroup
    std::vector<std::string> conmonArgs;  // podman: argv of the conmon that started the runtime
};
Result<WorkloadFacts> gatherFacts(Integration integration, const OciState& state);
Result<WorkloadIdentity> identify(Integration integration, const OciState& state, const WorkloadFacts& facts);

}  // namespace secretshim::plugin
