// One connection on the agent's named pipe, either end: JSON messages with
// a timeout on every read and write (overlapped I/O), so a stuck peer never
// holds the other side forever.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "platform/windows/unique_handle.hpp"

namespace secretshim::plugin {

using Millis = std::chrono::milliseconds;

class PipeConnection {
public:
    // Client side: waits up to `timeout` for the agent's pipe to exist and
    // have a free instance. The agent may only identify, never impersonate,
    // this client (SECURITY_IDENTIFICATION). A server that runs neither as
    // SYSTEM nor as an elevated administrator is refused before anything is
    // sent (pipe_server_check.hpp): it is not the agent.
    static Result<PipeConnection> connect(const std::wstring& path, Millis timeout);

    explicit PipeConnection(platform::UniqueHandle pipe);

    Result<void> send(const nlohmann::json& body, Millis timeout);
    // One message. A peer that closed is code ERROR_BROKEN_PIPE; a message
    // over kPipeMaxMessage is drained and refused (ERROR_MORE_DATA); one
    // that is not a JSON object is refused (ERROR_INVALID_DATA). The raw
    // bytes are wiped once parsed.
    Result<nlohmann::json> receive(Millis timeout);

    HANDLE handle() const { return pipe_.get(); }

private:
    Result<unsigned long> readSome(unsigned char* data, unsigned long size, Millis timeout);

    platform::UniqueHandle pipe_;
    platform::UniqueHandle event_;
};

// Server side: one listening instance of the pipe at a time.
class PipeListener {
public:
    // Creates the first instance with FILE_FLAG_FIRST_PIPE_INSTANCE: if the
    // name is taken (another agent, or a squatter), the agent refuses to run.
    static Result<PipeListener> create(const std::wstring& path);
    // Waits for a client on the current instance, hands it over and opens
    // the next instance. If `stop` (an event) is set first, the wait is
    // cancelled and this fails with code ERROR_OPERATION_ABORTED.
    Result<PipeConnection> accept(HANDLE stop = nullptr);

private:
    PipeListener(std::wstring path, platform::SecurityDescriptor descriptor)
        : path_(std::move(path)), descriptor_(std::move(descriptor)) {}
    Result<platform::UniqueHandle> newInstance(bool first);

    std::wstring path_;
    platform::SecurityDescriptor descriptor_;
    platform::UniqueHandle next_;
};

// A message's bytes, invalid UTF-8 replaced (never thrown on).
std::string encodeMessage(const nlohmann::json& body);

}  // namespace secretshim::plugin
