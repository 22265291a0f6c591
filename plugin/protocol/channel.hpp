// One connection to the agent's socket: JSON messages with fds attached.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::plugin {

struct JsonMessage {
    nlohmann::json body;
    std::vector<platform::UniqueFd> fds;
};

// Connects to the agent; every later send and receive times out after `timeout`.
Result<platform::UniqueFd> connectAgent(const std::string& socketPath, std::chrono::milliseconds timeout);
// Every later send and receive on `sock` times out after `timeout` (> 0).
Result<void> setSocketTimeout(int sock, std::chrono::milliseconds timeout);
// A message's bytes. A reply may echo a request's bytes (quoted, but not
// necessarily valid UTF-8): invalid sequences are replaced, never thrown on.
std::string encodeJson(const nlohmann::json& body);
Result<void> sendJson(int sock, const nlohmann::json& body, std::span<const int> fds = {});
// Receives one message; refuses anything that is not a JSON object (code
// EBADMSG). Nothing to read on a non-blocking socket, or a timeout on a
// blocking one, is code EAGAIN.
Result<JsonMessage> receiveJson(int sock);
// What receiveJson() makes of a message's bytes (also used by the fuzzer).
Result<JsonMessage> decodeJson(std::string_view data, std::vector<platform::UniqueFd> fds);

}  // namespace secretshim::plugin
