// secretshim-nri's part in a container's life: at the runtime's
// CreateContainer it reads what the pod asks for this container and who the
// runtime says it is, announces both to the agent (which refuses what it
// would not grant), and has the runtime add the hook; at StopContainer and
// RemoveContainer it tells the agent to forget and flush.
#pragma once

#include <chrono>
#include <functional>
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

// Two instances of the plugin are registered with the runtime (main.cpp:
// the pre-launched one and its standby), each the other's backup. Whichever
// the runtime asks first about a container decides; the other sees the
// hook already in the container (NRI shows each plugin the adjustments of
// the plugins before it) and adds nothing.
class Relay final : public Handler {
public:
    Relay(std::string agentSocket, std::string hook) : socket_(std::move(agentSocket)), hook_(std::move(hook)) {}

    // Makes this the standby of an instance that relays stops while
    // `peerAlive` says it runs: this one relays them only once it is gone
    // (a stop it misses is flushed anyway, at the container's exit).
    void standBy(std::function<bool()> peerAlive) { peerAlive_ = std::move(peerAlive); }

    std::int32_t events() const override;
    void synchronize(const nriapi::SynchronizeRequest& request) override;
    Result<nriapi::ContainerAdjustment> createContainer(const nriapi::CreateContainerRequest& request,
                                                        Clock::time_point deadline) override;
    void stopContainer(const nriapi::StopContainerRequest& request, Clock::time_point deadline) override;
    void stateChange(const nriapi::StateChangeEvent& event, Clock::time_point deadline) override;

private:
    // One request to the agent and its reply, by the call's deadline.
    Result<void> ask(const nlohmann::json& request, Clock::time_point deadline);
    void forget(const std::string& id, Clock::time_point deadline);

    std::string socket_;
    std::string hook_;
    std::function<bool()> peerAlive_;
};

}  // namespace secretshim::plugin::nri
