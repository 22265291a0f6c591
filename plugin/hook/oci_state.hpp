// What the hook needs from the runtime: the OCI state on stdin and the
// rootfs path from the bundle's config.json.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

struct OciState {
    std::string id;
    pid_t pid = 0;  // 0 where the stage has none (poststop)
    std::string bundle;
    std::string status;  // "creating"/"created" at createRuntime, "stopped" at poststop
    std::map<std::string, std::string> annotations;
};

Result<OciState> parseOciState(std::string_view json);
// The pause container of a CRI pod (containerd or CRI-O): it gets the pod's
// annotations too, but runs no workload, so it gets no secrets.
bool isPodSandbox(const OciState& state);
// Podman 4.3 splits an --annotation value at commas, so an unquoted
// "io.secretshim.secrets=source=a,target=/x,mode=0400" arrives as the
// annotations io.secretshim.secrets=source=a, target=/x and mode=0400: the
// secret would be delivered with the default target, owner and mode. Fails
// with a hint when such a stray piece is there.
Result<void> checkNoSplitReference(const OciState& state);
// What else the hook reads from config.json.
struct BundleFacts {
    bool rootReadOnly = false;  // root.readonly
    bool mayHoldSysAdmin = false;  // CAP_SYS_ADMIN in process.capabilities.bounding
};

// root.path of config.json, made absolute against the bundle; the other
// facts into *facts if given.
Result<std::string> parseRootfsPath(std::string_view configJson, const std::string& bundle,
                                    BundleFacts* facts = nullptr);

}  // namespace secretshim::plugin
