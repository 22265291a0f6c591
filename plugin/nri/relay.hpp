// secretshim-nri's part in a container's life: at the runtime's
// CreateContainer it reads what the pod asks for this container and who the
// runtime says it is, announces both to the agent (which refuses what it
// would not grant), and has the runtime add the hook; at StopContainer and
// RemoveContainer it tells the agent to forget and flush.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "mountfs/base/error.hpp"
#include "nri.pb.h"
#include "plugin/nri/session.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin::nri {

// What the pod asks for the container (io.secretshim.secrets.<container
// name>, io.secretshim.task.<container name> on the pod), with the
// runtime's identity of it; nothing when it asks for nothing. The plain
// keys would reach every container of the pod, sidecars too: refused, as
// the hook refuses them.
Result<std::optional<NriCreateRequest>> announcement(const nriapi::CreateContainerRequest& request);

// The hooks and the mark the runtime adds to an announced container.
nriapi::ContainerAdjustment adjustment(const std::string& hook, const std::string& agentSocket);

class Relay final : public Handler {
public:
    Relay(std::string agentSocket, std::string hook) : socket_(std::move(agentSocket)), hook_(std::move(hook)) {}

    std::int32_t events() const override;
    void synchronize(const nriapi::SynchronizeRequest& request) override;
    Result<nriapi::ContainerAdjustment> createContainer(
        const nriapi::CreateContainerRequest& request) override;
    void stopContainer(const nriapi::StopContainerRequest& request) override;
    void stateChange(const nriapi::StateChangeEvent& event) override;

private:
    // One request to the agent and its reply, within the runtime's patience.
    Result<void> ask(const nlohmann::json& request);

    std::string socket_;
    std::string hook_;
};

}  // namespace secretshim::plugin::nri
