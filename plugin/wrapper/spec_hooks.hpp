// Adds secretshim's hooks to an OCI runtime spec (a bundle's config.json),
// for containers that ask for secrets by annotation and only for them.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

struct HookSettings {
    std::string hookPath;  // absolute path of secretshim-hook
    std::string socket;    // the agent's socket; empty: the hook's default
    int timeout = 10;      // seconds, for each hook run
    // The hook's --integration: who started the container, as the name the
    // wrapper was run by says (plugin/wrapper/main.cpp).
    std::string integration = "containerd";
};

// True if the spec carries an annotation of ours (io.secretshim.*) and is
// not a CRI pod's sandbox.
bool specAsksForSecrets(const nlohmann::json& spec);

// Adds a createRuntime and a poststop hook running settings.hookPath, after
// any the spec already has; a hook already registered at a stage is not
// added twice. Returns whether the spec changed. Fails (spec untouched) if
// the spec's hooks are malformed.
Result<bool> addSecretshimHooks(nlohmann::json& spec, const HookSettings& settings);

}  // namespace secretshim::plugin
