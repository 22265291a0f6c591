// The agent's configuration: a YAML file, with command-line flags that
// override its main keys. Unknown keys and bad values are refused with the
// file, line and key.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mountfs/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

struct AgentConfig {
    std::string socket{kDefaultSocket};
    std::string stateDir = "/var/lib/secretshim";
    std::size_t maxPayload = mountfs::kDefaultMaxPayload;
    std::string source = "local";  // "local" (the embedded store)
};

// Parses YAML text; `name` is the file name used in errors.
Result<AgentConfig> parseAgentConfig(std::string_view yaml, const std::string& name);
Result<AgentConfig> loadAgentConfig(const std::string& path);

}  // namespace secretshim::plugin
