// The seam between the agent's core and where secrets come from: the
// embedded local store (local_source.hpp) or etcd (cluster_source.hpp). The
// core asks one question, "grant this container's request to who it is",
// and builds the view from the answer; it never knows which source it asked.
#pragma once

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "mountfs/secrets_view.hpp"
#include "plugin/identity/workload_identity.hpp"

namespace secretshim::plugin {

struct GrantedSecrets {
    // What the container receives, as Docker-style specs (what its task
    // record keeps) and parsed, in the container's own ids.
    std::string specs;
    std::vector<mountfs::SecretRef> refs;
    // What `payloads` draws from (sealed records, decrypted values), kept
    // alive as long as it: declared first, so it goes last.
    std::shared_ptr<const void> held;
    // refs[i]'s value, produced straight into the view's file.
    std::unique_ptr<mountfs::PayloadSource> payloads;
    // A name that at most maxHolders containers may hold at once (a
    // cluster task); empty when any number may.
    std::string claim;
    std::size_t maxHolders = 0;
};

class SecretSource {
public:
    virtual ~SecretSource() = default;
    // `secrets` and `task` are the container's request (its annotations,
    // either may be empty); the source decides what of it `identity` gets.
    // A refusal is one line, the same for a secret that does not exist as
    // for one that is not granted: a requester learns nothing of the rest.
    // Its code says which kind it is, for the agent's metrics alone
    // (metrics.hpp): EACCES not granted, ENOENT granted but not held here,
    // ENOTCONN the control plane unreachable; a validation failure (no code)
    // is the request's.
    virtual Result<GrantedSecrets> grant(const WorkloadIdentity& identity, const std::string& secrets,
                                         const std::string& task) = 0;
};

// The refusal of a secret (or a cluster task) `what` names; EACCES tells
// the agent's log it was not granted (plugin/agent/agent.cpp).
inline tl::unexpected<Error> notGranted(const std::string& what, const WorkloadIdentity& identity) {
    return failWith(EACCES, what + " is not granted to " + identity.describe());
}

}  // namespace secretshim::plugin
