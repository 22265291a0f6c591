// What the hook needs from the runtime: the OCI state on stdin and the
// rootfs path from the bundle's config.json.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mountfs/error.hpp"

namespace secretshim::plugin {

struct OciState {
    std::string id;
    pid_t pid = 0;  // 0 where the stage has none (poststop)
    std::string bundle;
    std::map<std::string, std::string> annotations;
};

Result<OciState> parseOciState(std::string_view json);
// root.path of config.json, made absolute against the bundle.
Result<std::string> parseRootfsPath(std::string_view configJson, const std::string& bundle);

}  // namespace secretshim::plugin
