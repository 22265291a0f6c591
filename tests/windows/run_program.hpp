// Helpers of the Windows tests that run the programs as separate
// processes: starting one with its stdio captured, random markers, the
// environment's paths of the built programs.
#pragma once

#include <doctest/doctest.h>

#include <windows.h>
#include <bcrypt.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace secretshim::testing {

inline std::wstring widen(const std::string& s) { return std::wstring(s.begin(), s.end()); }

inline std::wstring exeFromEnv(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value != nullptr, name << " is not set (meson test sets it)");
    return widen(value);
}

inline std::string randomMarker() {
    unsigned char raw[12];
    REQUIRE(BCRYPT_SUCCESS(::BCryptGenRandom(nullptr, raw, sizeof raw, BCRYPT_USE_SYSTEM_PREFERRED_RNG)));
    std::string out = "marker-";
    for (unsigned char b : raw) {
        out += "0123456789abcdef"[b >> 4];
        out += "0123456789abcdef"[b & 0xf];
    }
    return out;
}

struct RunResult {
    DWORD exitCode = 0xFFFFFFFF;
    std::string out;
    std::string err;
};


inline std::wstring commandLine(const std::wstring& exe, const std::vector<std::wstring>& args) {
    // Arguments here hold no quotes or trailing backslashes before a quote.
    std::wstring line = L"\"" + exe + L"\"";
    for (const std::wstring& a : args) line += L" \"" + a + L"\"";
    return line;
}

inline void drain(HANDLE pipe, std::string* into) {
    char buf[4096];
    DWORD n = 0;
    while (::ReadFile(pipe, buf, sizeof buf, &n, nullptr) && n > 0) into->append(buf, n);
}

// Runs a program to its end, feeding `input` on stdin, as `token`'s user
// (the caller's own token if null).
inline RunResult run(const std::wstring& exe, const std::vector<std::wstring>& args, const std::string& input = {},
                     HANDLE token = nullptr) {
    SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, TRUE};
    HANDLE inRead, inWrite, outRead, outWrite, errRead, errWrite;
    REQUIRE(::CreatePipe(&inRead, &inWrite, &inherit, 0));
    REQUIRE(::CreatePipe(&outRead, &outWrite, &inherit, 0));
    REQUIRE(::CreatePipe(&errRead, &errWrite, &inherit, 0));
    ::SetHandleInformation(inWrite, HANDLE_FLAG_INHERIT, 0);
    ::SetHandleInformation(outRead, HANDLE_FLAG_INHERIT, 0);
    ::SetHandleInformation(errRead, HANDLE_FLAG_INHERIT, 0);
    STARTUPINFOW si{};
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = inRead;
    si.hStdOutput = outWrite;
    si.hStdError = errWrite;
    PROCESS_INFORMATION pi{};
    std::wstring line = commandLine(exe, args);
    const BOOL started =
        token != nullptr ? ::CreateProcessAsUserW(token, exe.c_str(), line.data(), nullptr, nullptr, TRUE, 0, nullptr,
                                                  nullptr, &si, &pi)
                         : ::CreateProcessW(exe.c_str(), line.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si,
                                            &pi);
    REQUIRE(started);
    ::CloseHandle(inRead);
    ::CloseHandle(outWrite);
    ::CloseHandle(errWrite);
    RunResult result;
    std::thread outThread(drain, outRead, &result.out);
    std::thread errThread(drain, errRead, &result.err);
    DWORD written = 0;
    if (!input.empty()) ::WriteFile(inWrite, input.data(), static_cast<DWORD>(input.size()), &written, nullptr);
    ::CloseHandle(inWrite);
    const DWORD waited = ::WaitForSingleObject(pi.hProcess, 60000);
    if (waited != WAIT_OBJECT_0) ::TerminateProcess(pi.hProcess, 99);
    ::GetExitCodeProcess(pi.hProcess, &result.exitCode);
    outThread.join();
    errThread.join();
    // A console program's text-mode stdio ends lines with CR LF.
    for (std::string* text : {&result.out, &result.err})
        for (std::size_t at; (at = text->find("\r\n")) != std::string::npos;) text->erase(at, 1);
    ::CloseHandle(outRead);
    ::CloseHandle(errRead);
    ::CloseHandle(pi.hProcess);
    ::CloseHandle(pi.hThread);
    return result;
}

inline bool oneLine(const std::string& text) {
    return !text.empty() && text.back() == '\n' && text.find('\n') == text.size() - 1;
}

inline bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// This process's token less its Administrators group (made deny-only, as
// UAC leaves it for an administrator who did not elevate).
inline HANDLE filteredToken() {
    HANDLE self = nullptr;
    REQUIRE(::OpenProcessToken(::GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY, &self));
    alignas(DWORD) BYTE admins[SECURITY_MAX_SID_SIZE] = {};
    DWORD size = sizeof admins;
    REQUIRE(::CreateWellKnownSid(WinBuiltinAdministratorsSid, nullptr, admins, &size));
    SID_AND_ATTRIBUTES disable{admins, 0};
    HANDLE filtered = nullptr;
    REQUIRE(::CreateRestrictedToken(self, 0, 1, &disable, 0, nullptr, 0, nullptr, &filtered));
    ::CloseHandle(self);
    return filtered;
}

}  // namespace secretshim::testing
