#include "plugin/windows/pipe_server_check.hpp"

#include <vector>

#include "platform/windows/unique_handle.hpp"
#include "platform/windows/win_error.hpp"

namespace secretshim::plugin {
namespace {

using platform::failLastError;
using platform::UniqueHandle;

// GetTokenInformation for a variable-sized class; DWORD-aligned storage.
Result<std::vector<DWORD>> tokenInfo(HANDLE token, TOKEN_INFORMATION_CLASS kind, const char* what) {
    DWORD size = 0;
    ::GetTokenInformation(token, kind, nullptr, 0, &size);
    if (size == 0) return failLastError(std::string("reading the token's ") + what);
    std::vector<DWORD> buffer((size + sizeof(DWORD) - 1) / sizeof(DWORD));
    if (!::GetTokenInformation(token, kind, buffer.data(), static_cast<DWORD>(buffer.size() * sizeof(DWORD)), &size))
        return failLastError(std::string("reading the token's ") + what);
    return buffer;
}

bool isWellKnown(PSID sid, WELL_KNOWN_SID_TYPE type) {
    BYTE known[SECURITY_MAX_SID_SIZE];
    DWORD size = sizeof known;
    return ::CreateWellKnownSid(type, nullptr, known, &size) && ::EqualSid(sid, known);
}

}  // namespace

Result<TokenStanding> tokenStanding(HANDLE token) {
    TokenStanding standing;
    auto user = tokenInfo(token, TokenUser, "user");
    if (!user) return propagate(user);
    standing.localSystem = isWellKnown(reinterpret_cast<TOKEN_USER*>(user->data())->User.Sid, WinLocalSystemSid);

    TOKEN_ELEVATION elevation{};
    DWORD size = 0;
    if (!::GetTokenInformation(token, TokenElevation, &elevation, sizeof elevation, &size))
        return failLastError("reading the token's elevation");
    standing.elevated = elevation.TokenIsElevated != 0;

    // A UAC-filtered administrator holds the group deny-only: not enabled.
    auto groups = tokenInfo(token, TokenGroups, "groups");
    if (!groups) return propagate(groups);
    const auto* list = reinterpret_cast<const TOKEN_GROUPS*>(groups->data());
    for (DWORD i = 0; i < list->GroupCount; ++i) {
        const SID_AND_ATTRIBUTES& group = list->Groups[i];
        if ((group.Attributes & SE_GROUP_ENABLED) && !(group.Attributes & SE_GROUP_USE_FOR_DENY_ONLY) &&
            isWellKnown(group.Sid, WinBuiltinAdministratorsSid))
            standing.administrator = true;
    }
    return standing;
}

bool mayServeAgentPipe(const TokenStanding& standing) {
    return standing.localSystem || (standing.elevated && standing.administrator);
}

Result<void> checkPipeServer(HANDLE pipe, const std::string& shown) {
    ULONG pid = 0;
    if (!::GetNamedPipeServerProcessId(pipe, &pid))
        return failLastError("cannot tell which process serves the pipe " + shown);
    const std::string process = "the process serving the pipe " + shown + " (pid " + std::to_string(pid) + ")";
    UniqueHandle handle(::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
    if (!handle) return failLastError("cannot open " + process);
    HANDLE raw = nullptr;
    if (!::OpenProcessToken(handle.get(), TOKEN_QUERY, &raw)) return failLastError("cannot read the token of " + process);
    UniqueHandle token(raw);
    auto standing = tokenStanding(token.get());
    if (!standing) return propagate(standing, process);
    if (!mayServeAgentPipe(*standing))
        return fail(process + " runs neither as SYSTEM nor as an elevated administrator: it is not the secretshim "
                              "agent (did another process take the pipe's name?); nothing was sent to it");
    return {};
}

}  // namespace secretshim::plugin
