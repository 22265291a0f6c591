// One NRI connection, plugin side, without I/O: bytes in, bytes out. It
// registers the plugin with the runtime (RegisterPlugin on connection 2),
// answers the runtime's calls on connection 1 — Configure with the events
// the handler wants, Synchronize, CreateContainer, StopContainer,
// StateChange, Shutdown — by asking the handler, and refuses any other
// call as unimplemented. Whoever owns the socket (a unix connection to the
// runtime's NRI socket, or the fd a runtime pre-launching the plugin hands
// over) feeds it what it reads and writes what it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "mountfs/base/error.hpp"
#include "nri.pb.h"
#include "plugin/nri/wire.hpp"

namespace secretshim::plugin::nri {

// gRPC's status codes, as ttrpc carries them.
inline constexpr std::int32_t kInvalidArgument = 3;
inline constexpr std::int32_t kPermissionDenied = 7;
inline constexpr std::int32_t kUnimplemented = 12;
inline constexpr std::int32_t kInternal = 13;

using Clock = std::chrono::steady_clock;
// When a call's answer must be on its way. The runtime gives each call its
// own time (ttrpc's timeout_nano: containerd's plugin_request_timeout, 2 s
// by default) and drops a plugin that does not answer within it, creating
// the container as if the plugin did not exist: a handler that is not done
// by its deadline refuses instead. (NRI 0.6 calls its plugins one call at a
// time, under one lock, so calls never wait behind one another here.)
Clock::time_point callDeadline(std::int64_t timeoutNano, Clock::time_point arrived);

// The event mask bit of an NRI event (ConfigureResponse.events).
constexpr std::int32_t eventBit(nriapi::Event event) { return 1 << (static_cast<int>(event) - 1); }

class Handler {
public:
    virtual ~Handler() = default;
    // The events this plugin subscribes to (eventBit()s; CreateContainer
    // is always called).
    virtual std::int32_t events() const = 0;
    // Every pod and container the runtime knows, when the plugin joins.
    virtual void synchronize(const nriapi::SynchronizeRequest& request) = 0;
    // The container's adjustment; a failure refuses the container (the
    // runtime reports the message to whoever created it). Each call is
    // answered by `deadline` (callDeadline()).
    virtual Result<nriapi::ContainerAdjustment> createContainer(const nriapi::CreateContainerRequest& request,
                                                                Clock::time_point deadline) = 0;
    virtual void stopContainer(const nriapi::StopContainerRequest& request, Clock::time_point deadline) = 0;
    virtual void stateChange(const nriapi::StateChangeEvent& event, Clock::time_point deadline) = 0;
};

class Session {
public:
    // `index`: two digits, the plugin's place among the runtime's plugins.
    Session(Handler& handler, std::string name, std::string index)
        : handler_(handler), name_(std::move(name)), index_(std::move(index)) {}

    // What to write first: the RegisterPlugin call.
    Result<std::string> start();
    // What to write in answer to `bytes`, read at `now` (maybe nothing). A
    // call that cannot be served is refused on its stream; a failure means
    // the streams are out of step and the connection cannot go on: close it
    // (the runtime drops the plugin).
    Result<std::string> feed(std::span<const unsigned char> bytes, Clock::time_point now = Clock::now());
    // Whether the runtime acknowledged the registration.
    bool registered() const { return registered_; }
    // Whether the runtime has called Synchronize (an external plugin gets
    // no event before it; a pre-launched one gets none at all).
    bool synchronized() const { return synchronized_; }

private:
    Result<std::string> answer(const Message& request, Clock::time_point now);
    Result<void> acknowledge(const Message& response);

    Handler& handler_;
    std::string name_;
    std::string index_;
    Decoder decoder_;
    std::uint32_t lastStream_ = 0;  // the runtime's last call's stream id
    bool registered_ = false;
    bool synchronized_ = false;
};

}  // namespace secretshim::plugin::nri
