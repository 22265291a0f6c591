// One client's conversation with the agent, without the socket: the
// connection (agent.cpp) feeds it each message it receives and sends what it
// answers; the agent_request fuzzer drives the same code with no socket at
// all. It holds a hook's task between "create" and "attached".
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"
#include "plugin/agent/agent.hpp"
#include "plugin/protocol/channel.hpp"

namespace secretshim::plugin {

class Session {
public:
    // `refusal`: why this peer is not served (not root); it gets that as the
    // answer to its first request, then is closed.
    Session(Agent& agent, std::optional<std::string> refusal);

    struct Outcome {
        std::optional<nlohmann::json> reply;  // none: drop the client without an answer
        std::vector<int> fds;                 // sent with the reply; owned by the pending task
        bool close = false;                   // close the connection after sending
    };
    // One received message, as receiveJson() returned it (never EAGAIN): a
    // JSON object, a malformed one (EBADMSG), or a dropped client (closed,
    // truncated or oversized).
    Outcome receive(Result<JsonMessage> message);
    // The connection is gone (closed, timed out, the reply could not be
    // sent): a pending task's view is flushed.
    void abandon() { pending_.reset(); }
    const Agent::PendingTask* pending() const { return pending_.get(); }

private:
    Outcome onCreate(const nlohmann::json& request, std::vector<platform::UniqueFd>& fds);
    Outcome onAttached(const nlohmann::json& request);

    Agent& agent_;
    std::optional<std::string> refusal_;
    std::unique_ptr<Agent::PendingTask> pending_;
};

}  // namespace secretshim::plugin
