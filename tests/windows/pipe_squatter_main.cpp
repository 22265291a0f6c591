// A process that takes the agent's pipe name before the agent does, as an
// attacker would: serves one client with "ok" and records in RESULT_FILE
// how many bytes it was sent (never the bytes) and what its own token says.
// Never installed. Usage: pipe-squatter.exe PIPE_NAME RESULT_FILE
#include <windows.h>
#include <shellapi.h>

#include <string>

#include "plugin/windows/pipe_server_check.hpp"

namespace {

void record(const wchar_t* path, const std::string& text) {
    HANDLE file = ::CreateFileW(path, GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (file == INVALID_HANDLE_VALUE) return;
    DWORD n = 0;
    ::WriteFile(file, text.data(), static_cast<DWORD>(text.size()), &n, nullptr);
    ::CloseHandle(file);
}

std::string standing() {
    HANDLE token = nullptr;
    if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &token)) return "token ?";
    auto s = secretshim::plugin::tokenStanding(token);
    ::CloseHandle(token);
    if (!s) return "token ?";
    return std::string("system=") + (s->localSystem ? "1" : "0") + " elevated=" + (s->elevated ? "1" : "0") +
           " admin=" + (s->administrator ? "1" : "0");
}

}  // namespace

int main() {
    int argc = 0;
    LPWSTR* argv = ::CommandLineToArgvW(::GetCommandLineW(), &argc);
    if (argv == nullptr || argc != 3) return 2;
    const std::wstring name = std::wstring(L"\\\\.\\pipe\\") + argv[1];
    HANDLE pipe = ::CreateNamedPipeW(name.c_str(), PIPE_ACCESS_DUPLEX,
                                     PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, 1, 65536, 65536, 0,
                                     nullptr);
    if (pipe == INVALID_HANDLE_VALUE) return 3;
    record(argv[2], "listening " + standing() + "\n");
    if (!::ConnectNamedPipe(pipe, nullptr) && ::GetLastError() != ERROR_PIPE_CONNECTED) return 4;
    std::string buffer(65536, '\0');
    DWORD n = 0;
    const bool got = ::ReadFile(pipe, buffer.data(), static_cast<DWORD>(buffer.size()), &n, nullptr) && n > 0;
    ::SecureZeroMemory(buffer.data(), buffer.size());
    if (got) {
        const std::string ok = "{\"ok\":true}";
        DWORD written = 0;
        ::WriteFile(pipe, ok.data(), static_cast<DWORD>(ok.size()), &written, nullptr);
    }
    record(argv[2], "served " + standing() + " received " + std::to_string(got ? n : 0) + " bytes\n");
    ::FlushFileBuffers(pipe);
    ::CloseHandle(pipe);
    return 0;
}
