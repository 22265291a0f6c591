// The agent's named pipe on Windows: the messages of the Linux unix socket
// (plugin/protocol/messages.hpp: the same ops and fields), one JSON object
// per pipe message (PIPE_TYPE_MESSAGE keeps boundaries as SOCK_SEQPACKET
// does), at most kMaxMessage bytes; no handles travel, so a secret's value
// follows secret.create in secret.data messages of hex. Only Administrators
// and SYSTEM may open the pipe (its DACL), and only from this machine.
//
// The agent, not the hook, reads the store and writes the container's
// files: the hook is a trigger, and plaintext never passes through it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

inline constexpr std::size_t kPipeMaxMessage = kMaxMessage;
inline constexpr std::string_view kDefaultPipe = "\\\\.\\pipe\\secretshim-agent";
inline constexpr std::string_view kDefaultStateDir = "C:\\ProgramData\\secretshim";
// Raw bytes of a secret per secret.data message (hex doubles them).
inline constexpr std::size_t kSecretChunk = 16 * 1024;

// "\\.\pipe\NAME" from a full local pipe path or a bare NAME; refuses
// remote pipes ("\\host\pipe\...") and names with a backslash or nothing.
Result<std::wstring> pipePath(std::string_view name);

}  // namespace secretshim::plugin
