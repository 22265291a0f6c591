// The agent's named-pipe protocol on Windows: the framing of the Linux unix
// socket (plugin/protocol/messages.hpp), one JSON object per pipe message
// (PIPE_TYPE_MESSAGE keeps boundaries as SOCK_SEQPACKET does), at most
// kMaxMessage bytes; no handles travel. Only Administrators and SYSTEM may
// open the pipe (its DACL), and only from this machine.
//
//   hook -> agent  {"op":"prepare","task":ID,"root":ROOT,"secrets":SPECS}
//   agent -> hook  {"ok":true,"files":N}
//   hook -> agent  {"op":"cleanup","task":ID}
//   agent -> hook  {"ok":true,"cleaned":B}          (B false: nothing was there)
//   ctl -> agent   {"op":"secret-create","name":N,"size":S}, then
//                  {"op":"secret-data","hex":H} until S bytes came
//   agent -> ctl   {"ok":true,"secret":{name,id,size,created}}
//   ctl -> agent   {"op":"secret-ls"}  ->  {"ok":true,"secrets":[{...}]}
//   ctl -> agent   {"op":"secret-rm","name":N}  ->  {"ok":true}
//   any failure    {"ok":false,"error":ONE_LINE}
//
// The agent, not the hook, reads the store and writes the container's
// files: the hook is a trigger, and plaintext never passes through it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

inline constexpr std::size_t kPipeMaxMessage = 64 * 1024;
inline constexpr std::string_view kDefaultPipe = "\\\\.\\pipe\\secretshim-agent";
inline constexpr std::string_view kDefaultStateDir = "C:\\ProgramData\\secretshim";
// Raw bytes of a secret per secret-data message (hex doubles them).
inline constexpr std::size_t kSecretChunk = 16 * 1024;

// "\\.\pipe\NAME" from a full local pipe path or a bare NAME; refuses
// remote pipes ("\\host\pipe\...") and names with a backslash or nothing.
Result<std::wstring> pipePath(std::string_view name);

}  // namespace secretshim::plugin
