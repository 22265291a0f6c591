// secretshimd.exe as a Windows service, driven through the service control
// manager as an admin would: `service install`, StartServiceW, the pipe
// answering once the SCM says SERVICE_RUNNING, ControlService(STOP),
// `service uninstall`. Under wine this is wine's services.exe (what it does
// not show is in docs/windows.md). Each case uses its own service name,
// pipe and state directory, and removes its service even when it fails.
#include <doctest/doctest.h>

#include <windows.h>
#include <shellapi.h>
#include <tlhelp32.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "plugin/windows/pipe_channel.hpp"
#include "plugin/windows/service_install.hpp"
#include "tests/windows/run_program.hpp"
#include "tests/windows/test_support.hpp"

using namespace secretshim;
using namespace secretshim::testing;

namespace {

constexpr DWORD kWaitMs = 60000;  // wine's services.exe on a loaded machine

struct ScCloser {
    void operator()(SC_HANDLE h) const { ::CloseServiceHandle(h); }
};
using Sc = std::unique_ptr<std::remove_pointer_t<SC_HANDLE>, ScCloser>;

Sc manager() {
    Sc m(::OpenSCManagerW(nullptr, nullptr, SC_MANAGER_ALL_ACCESS));
    REQUIRE(m);
    return m;
}

// The service, or null with the Win32 error in `error`.
Sc openService(const std::wstring& name, DWORD* error = nullptr) {
    Sc m = manager();
    Sc s(::OpenServiceW(m.get(), name.c_str(), SERVICE_ALL_ACCESS));
    if (error != nullptr) *error = s ? ERROR_SUCCESS : ::GetLastError();
    return s;
}

SERVICE_STATUS_PROCESS statusOf(SC_HANDLE service) {
    SERVICE_STATUS_PROCESS status{};
    DWORD needed = 0;
    REQUIRE(::QueryServiceStatusEx(service, SC_STATUS_PROCESS_INFO, reinterpret_cast<BYTE*>(&status), sizeof status,
                                   &needed));
    return status;
}

// Waits until the service is in `state`; returns the last status. With
// `seen`, polls without pause and records every state it saw.
SERVICE_STATUS_PROCESS waitFor(SC_HANDLE service, DWORD state, std::vector<DWORD>* seen = nullptr) {
    const ULONGLONG deadline = ::GetTickCount64() + kWaitMs;
    for (;;) {
        SERVICE_STATUS_PROCESS status = statusOf(service);
        if (seen != nullptr && (seen->empty() || seen->back() != status.dwCurrentState))
            seen->push_back(status.dwCurrentState);
        if (status.dwCurrentState == state || ::GetTickCount64() >= deadline) return status;
        if (seen == nullptr) ::Sleep(50);
    }
}

// What a client sees of the pipe right now: ERROR_SUCCESS if a server
// answers, ERROR_FILE_NOT_FOUND if nobody serves it.
DWORD probePipe(const std::wstring& pipe) {
    const std::wstring path = L"\\\\.\\pipe\\" + pipe;
    HANDLE h = ::CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                             SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (h == INVALID_HANDLE_VALUE) return ::GetLastError() == ERROR_PIPE_BUSY ? ERROR_SUCCESS : ::GetLastError();
    ::CloseHandle(h);
    return ERROR_SUCCESS;
}

bool processEnds(DWORD pid) {
    HANDLE process = ::OpenProcess(SYNCHRONIZE, FALSE, pid);
    if (process == nullptr) return true;  // already gone
    const bool ended = ::WaitForSingleObject(process, kWaitMs) == WAIT_OBJECT_0;
    ::CloseHandle(process);
    return ended;
}

// Two service managers each keep their own database: what one process
// installs is missing for another. wine starts a second services.exe when
// a program runs before a fresh prefix's setup ended (scripts/test-windows.sh
// waits for it); say so rather than fail obscurely.
void requireOneServiceManager() {
    HANDLE snapshot = ::CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    REQUIRE(snapshot != INVALID_HANDLE_VALUE);
    PROCESSENTRY32W entry{};
    entry.dwSize = sizeof entry;
    int managers = 0;
    for (BOOL more = ::Process32FirstW(snapshot, &entry); more; more = ::Process32NextW(snapshot, &entry))
        managers += _wcsicmp(entry.szExeFile, L"services.exe") == 0;
    ::CloseHandle(snapshot);
    REQUIRE_MESSAGE(managers <= 1, managers << " services.exe run (under wine: the prefix was used before its setup "
                                               "ended; see scripts/test-windows.sh)");
}

std::wstring suffix() { return widen(randomMarker().substr(7, 10)); }

// Stops and deletes the service when the test case ends, however it ends
// (the wine prefix is shared by every test run).
class ServiceCleanup {
public:
    explicit ServiceCleanup(std::wstring name) : name_(std::move(name)) {}
    ~ServiceCleanup() {
        Sc m(::OpenSCManagerW(nullptr, nullptr, SC_MANAGER_ALL_ACCESS));
        Sc s(m ? ::OpenServiceW(m.get(), name_.c_str(), SERVICE_ALL_ACCESS) : nullptr);
        if (!s) return;
        SERVICE_STATUS ignored{};
        ::ControlService(s.get(), SERVICE_CONTROL_STOP, &ignored);
        for (int i = 0; i < 200; ++i) {
            SERVICE_STATUS_PROCESS status{};
            DWORD needed = 0;
            if (!::QueryServiceStatusEx(s.get(), SC_STATUS_PROCESS_INFO, reinterpret_cast<BYTE*>(&status),
                                        sizeof status, &needed) ||
                status.dwCurrentState == SERVICE_STOPPED)
                break;
            ::Sleep(50);
        }
        ::DeleteService(s.get());
    }

private:
    std::wstring name_;
};

struct Installed {
    Installed() { requireOneServiceManager(); }
    std::wstring name = L"secretshimd-test-" + suffix();
    std::wstring pipe = L"secretshim-svc-" + suffix();
    TempDir work{(L"svc-" + suffix()).c_str()};  // not by pid alone: wine reuses pids across runs
    std::wstring stateDir = work.path().substr(4) + L"\\state";  // made by the service's first start
    std::wstring agent = exeFromEnv("SECRETSHIM_AGENT_EXE");
    std::wstring ctl = exeFromEnv("SECRETSHIM_CTL_EXE");
    ServiceCleanup cleanup{name};

    RunResult agentRun(std::vector<std::wstring> args, HANDLE token = nullptr) { return run(agent, args, {}, token); }
    RunResult ctlRun(std::vector<std::wstring> args, const std::string& input = {}) {
        args.insert(args.begin(), {L"--pipe", pipe});
        return run(ctl, args, input);
    }
    RunResult install() {
        return agentRun({L"service", L"install", L"--name", name, L"--pipe", pipe, L"--state-dir", stateDir});
    }
};

std::vector<std::wstring> argvOf(const std::wstring& line) {
    int count = 0;
    LPWSTR* argv = ::CommandLineToArgvW(line.c_str(), &count);
    std::vector<std::wstring> out;
    for (int i = 0; argv != nullptr && i < count; ++i) out.emplace_back(argv[i]);
    if (argv != nullptr) ::LocalFree(argv);
    return out;
}

}  // namespace

TEST_CASE("an argument quoted for the service's command line reads back unchanged") {
    const std::vector<std::wstring> values = {
        L"plain", L"", L"C:\\Program Files\\secretshim\\state", L"C:\\dir with space\\", L"a\"b", L"a\\\"b",
        L"\\\\.\\pipe\\name", L"ends\\\\", L"tab\there", L"C:\\x\\"};
    for (const std::wstring& value : values) {
        const auto argv = argvOf(L"prog.exe " + plugin::quoteArgument(value) + L" next");
        REQUIRE(argv.size() == 3);
        CHECK_MESSAGE(argv[1] == value, narrow(value));
        CHECK(argv[2] == L"next");
    }
}

TEST_CASE("the service is installed, started, serves the pipe, stops and is uninstalled through the SCM") {
    Installed svc;
    const RunResult installed = svc.install();
    CHECK(installed.exitCode == 0);
    CHECK(has(installed.out, "installed the service \"" + narrow(svc.name) + "\" (automatic start, LocalSystem)"));
    CHECK(installed.err.empty());
    MESSAGE("install: " << installed.out);

    DWORD openError = 0;
    Sc service = openService(svc.name, &openError);
    REQUIRE_MESSAGE(service, "OpenServiceW: Win32 error " << openError);
    {  // what the SCM holds: own process, automatic start, LocalSystem, the agent's options
        DWORD needed = 0;
        ::QueryServiceConfigW(service.get(), nullptr, 0, &needed);
        std::vector<unsigned char> buffer(needed);
        auto* config = reinterpret_cast<QUERY_SERVICE_CONFIGW*>(buffer.data());
        REQUIRE(::QueryServiceConfigW(service.get(), config, needed, &needed));
        CHECK(config->dwServiceType == SERVICE_WIN32_OWN_PROCESS);
        CHECK(config->dwStartType == SERVICE_AUTO_START);
        const std::wstring account = config->lpServiceStartName ? config->lpServiceStartName : L"";
        CHECK_MESSAGE((account.empty() || _wcsicmp(account.c_str(), L"LocalSystem") == 0), narrow(account));
        const auto argv = argvOf(config->lpBinaryPathName);
        REQUIRE(argv.size() == 6);
        CHECK(_wcsicmp(argv[0].c_str(), svc.agent.c_str()) == 0);
        CHECK(argv[1] == L"--service");
        CHECK(argv[2] == L"--pipe");
        CHECK(argv[3] == svc.pipe);
        CHECK(argv[4] == L"--state-dir");
        CHECK(argv[5] == svc.stateDir);
        ::QueryServiceConfig2W(service.get(), SERVICE_CONFIG_DESCRIPTION, nullptr, 0, &needed);
        std::vector<unsigned char> described(needed + sizeof(SERVICE_DESCRIPTIONW));
        REQUIRE(::QueryServiceConfig2W(service.get(), SERVICE_CONFIG_DESCRIPTION, described.data(),
                                       static_cast<DWORD>(described.size()), &needed));
        const auto* description = reinterpret_cast<SERVICE_DESCRIPTIONW*>(described.data());
        REQUIRE(description->lpDescription != nullptr);
        CHECK(has(narrow(description->lpDescription), "secretshim node agent"));
    }
    CHECK(statusOf(service.get()).dwCurrentState == SERVICE_STOPPED);
    CHECK(probePipe(svc.pipe) == ERROR_FILE_NOT_FOUND);

    // A second install of the same name: one line, nothing changed.
    const RunResult again = svc.install();
    CHECK(again.exitCode == 1);
    CHECK(oneLine(again.err));
    CHECK(has(again.err, "secretshimd: service install: service \"" + narrow(svc.name) + "\" is already installed"));

    // Started by the SCM: SERVICE_RUNNING only once the pipe serves.
    REQUIRE(::StartServiceW(service.get(), 0, nullptr));
    const SERVICE_STATUS_PROCESS running = waitFor(service.get(), SERVICE_RUNNING);
    REQUIRE(running.dwCurrentState == SERVICE_RUNNING);
    CHECK(probePipe(svc.pipe) == ERROR_SUCCESS);
    CHECK((running.dwControlsAccepted & SERVICE_ACCEPT_STOP) != 0);
    CHECK((running.dwControlsAccepted & SERVICE_ACCEPT_SHUTDOWN) != 0);
    CHECK(running.dwProcessId != 0);
    CHECK(running.dwProcessId != ::GetCurrentProcessId());

    // It is the agent: a secret stored through the pipe is listed, and the
    // state directory given at install time holds it.
    const std::string value = randomMarker();
    const std::string secret = "svc-" + narrow(suffix());
    const RunResult created = svc.ctlRun({L"secret", L"create", widen(secret), L"-"}, value);
    CHECK_MESSAGE(created.exitCode == 0, created.err);
    CHECK(created.err.empty());
    const RunResult listed = svc.ctlRun({L"secret", L"ls", L"--format", L"json"});
    CHECK(listed.exitCode == 0);
    CHECK(has(listed.out, "\"name\":\"" + secret + "\""));
    CHECK_FALSE(has(listed.out, value));
    const RunResult status = svc.ctlRun({L"status"});
    CHECK(status.exitCode == 0);
    CHECK(has(status.out, "\"source\": \"local\""));
    CHECK(pathExists(L"\\\\?\\" + svc.stateDir + L"\\secrets\\" + widen(secret) + L".secret"));

    // A client that stays connected and silent does not hold the stop up
    // (the agent would wait 30 s for it otherwise); it sees the pipe close.
    auto idle = plugin::PipeConnection::connect(L"\\\\.\\pipe\\" + svc.pipe, plugin::Millis(10000));
    REQUIRE(idle.has_value());

    // Stopped through the SCM: STOP_PENDING, then STOPPED with no error;
    // the process exits and the pipe is gone.
    const ULONGLONG stopAsked = ::GetTickCount64();
    SERVICE_STATUS stopping{};
    REQUIRE(::ControlService(service.get(), SERVICE_CONTROL_STOP, &stopping));
    CHECK((stopping.dwCurrentState == SERVICE_STOP_PENDING || stopping.dwCurrentState == SERVICE_STOPPED));
    const SERVICE_STATUS_PROCESS stopped = waitFor(service.get(), SERVICE_STOPPED);
    REQUIRE(stopped.dwCurrentState == SERVICE_STOPPED);
    CHECK(stopped.dwWin32ExitCode == NO_ERROR);
    CHECK(processEnds(running.dwProcessId));
    CHECK(::GetTickCount64() - stopAsked < 20000);
    CHECK(probePipe(svc.pipe) == ERROR_FILE_NOT_FOUND);
    auto closed = idle->receive(plugin::Millis(5000));
    REQUIRE_FALSE(closed.has_value());
    CHECK(closed.error().code == ERROR_BROKEN_PIPE);

    // Started again on the state directory its first start made.
    REQUIRE(::StartServiceW(service.get(), 0, nullptr));
    if (runningUnderWine()) {
        // wine shows the unix user as the owner of every file, so the agent
        // refuses its own state directory at the second start: the SCM is
        // told with a service-specific exit code, never SERVICE_RUNNING,
        // and nothing serves.
        std::vector<DWORD> seen;
        const SERVICE_STATUS_PROCESS refused = waitFor(service.get(), SERVICE_STOPPED, &seen);
        CHECK(std::find(seen.begin(), seen.end(), SERVICE_RUNNING) == seen.end());
        CHECK(refused.dwCurrentState == SERVICE_STOPPED);
        CHECK(refused.dwWin32ExitCode == ERROR_SERVICE_SPECIFIC_ERROR);
        CHECK(refused.dwServiceSpecificExitCode == 1);
        CHECK(probePipe(svc.pipe) == ERROR_FILE_NOT_FOUND);
    } else {
        REQUIRE(waitFor(service.get(), SERVICE_RUNNING).dwCurrentState == SERVICE_RUNNING);
        const RunResult relisted = svc.ctlRun({L"secret", L"ls", L"--format", L"json"});
        CHECK(has(relisted.out, "\"name\":\"" + secret + "\""));
        CHECK(::ControlService(service.get(), SERVICE_CONTROL_STOP, &stopping));
        CHECK(waitFor(service.get(), SERVICE_STOPPED).dwCurrentState == SERVICE_STOPPED);
    }
    service.reset();

    const RunResult removed = svc.agentRun({L"service", L"uninstall", L"--name", svc.name});
    CHECK(removed.exitCode == 0);
    CHECK(has(removed.out, "uninstalled the service \"" + narrow(svc.name) + "\""));
    DWORD error = 0;
    CHECK_FALSE(openService(svc.name, &error));
    CHECK(error == ERROR_SERVICE_DOES_NOT_EXIST);

    const RunResult removedAgain = svc.agentRun({L"service", L"uninstall", L"--name", svc.name});
    CHECK(removedAgain.exitCode == 1);
    CHECK(oneLine(removedAgain.err));
    CHECK(has(removedAgain.err,
              "secretshimd: service uninstall: service \"" + narrow(svc.name) + "\" is not installed"));
}

TEST_CASE("uninstall stops a running service first") {
    Installed svc;
    REQUIRE(svc.install().exitCode == 0);
    Sc service = openService(svc.name);
    REQUIRE(service);
    REQUIRE(::StartServiceW(service.get(), 0, nullptr));
    const SERVICE_STATUS_PROCESS running = waitFor(service.get(), SERVICE_RUNNING);
    REQUIRE(running.dwCurrentState == SERVICE_RUNNING);
    REQUIRE(probePipe(svc.pipe) == ERROR_SUCCESS);
    service.reset();

    const RunResult removed = svc.agentRun({L"service", L"uninstall", L"--name", svc.name});
    CHECK(removed.exitCode == 0);
    CHECK(removed.err.empty());
    CHECK(processEnds(running.dwProcessId));
    CHECK(probePipe(svc.pipe) == ERROR_FILE_NOT_FOUND);
    DWORD error = 0;
    CHECK_FALSE(openService(svc.name, &error));
    CHECK(error == ERROR_SERVICE_DOES_NOT_EXIST);
}

TEST_CASE("uninstall refuses a service that does not run secretshimd") {
    const std::wstring name = L"secretshim-test-other-" + suffix();
    ServiceCleanup cleanup(name);
    {
        Sc m = manager();
        Sc other(::CreateServiceW(m.get(), name.c_str(), name.c_str(), SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                                  SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL,
                                  L"C:\\windows\\system32\\notepad.exe --service", nullptr, nullptr, nullptr, nullptr,
                                  nullptr));
        REQUIRE(other);
    }
    const RunResult refused = run(exeFromEnv("SECRETSHIM_AGENT_EXE"), {L"service", L"uninstall", L"--name", name});
    CHECK(refused.exitCode == 1);
    CHECK(oneLine(refused.err));
    CHECK(has(refused.err, "service \"" + narrow(name) + "\" does not run SECRETSHIMD.EXE --service"));
    CHECK(has(refused.err, "not touching it"));
    CHECK(openService(name));
}

TEST_CASE("the service commands refuse a user who is not an elevated administrator, in one line") {
    Installed svc;
    HANDLE filtered = filteredToken();
    const RunResult install = svc.agentRun(
        {L"service", L"install", L"--name", svc.name, L"--pipe", svc.pipe, L"--state-dir", svc.stateDir}, filtered);
    CHECK(install.exitCode == 1);
    CHECK(oneLine(install.err));
    CHECK(has(install.err, "secretshimd: service install needs an elevated administrator"));
    DWORD error = 0;
    CHECK_FALSE(openService(svc.name, &error));
    CHECK(error == ERROR_SERVICE_DOES_NOT_EXIST);
    const RunResult uninstall = svc.agentRun({L"service", L"uninstall", L"--name", svc.name}, filtered);
    CHECK(uninstall.exitCode == 1);
    CHECK(has(uninstall.err, "secretshimd: service uninstall needs an elevated administrator"));
    ::CloseHandle(filtered);
}

TEST_CASE("install checks the agent's options before it registers anything") {
    Installed svc;
    const RunResult bad = svc.agentRun({L"service", L"install", L"--name", svc.name, L"--pipe", L"\\\\host\\pipe\\x"});
    CHECK(bad.exitCode == 1);
    CHECK(oneLine(bad.err));
    CHECK(has(bad.err, "is not a local pipe"));
    DWORD error = 0;
    CHECK_FALSE(openService(svc.name, &error));
    CHECK(error == ERROR_SERVICE_DOES_NOT_EXIST);
    const RunResult mixed = svc.agentRun({L"service", L"uninstall", L"--name", svc.name, L"--pipe", svc.pipe});
    CHECK(mixed.exitCode == 2);

    // A relative --state-dir is the installer's working directory, not the
    // service's (System32): it is registered absolute.
    REQUIRE(svc.agentRun({L"service", L"install", L"--name", svc.name, L"--state-dir", L"rel-state"}).exitCode == 0);
    Sc service = openService(svc.name);
    REQUIRE(service);
    DWORD needed = 0;
    ::QueryServiceConfigW(service.get(), nullptr, 0, &needed);
    std::vector<unsigned char> buffer(needed);
    auto* config = reinterpret_cast<QUERY_SERVICE_CONFIGW*>(buffer.data());
    REQUIRE(::QueryServiceConfigW(service.get(), config, needed, &needed));
    const auto argv = argvOf(config->lpBinaryPathName);
    wchar_t cwd[MAX_PATH] = {};
    REQUIRE(::GetCurrentDirectoryW(MAX_PATH, cwd) > 0);
    std::wstring expected = cwd;
    if (expected.back() != L'\\') expected += L'\\';
    REQUIRE(argv.size() == 4);
    CHECK(argv[2] == L"--state-dir");
    CHECK_MESSAGE(argv[3] == expected + L"rel-state", narrow(argv[3]));
}

TEST_CASE("--service outside the service control manager fails in one line") {
    const RunResult r = run(exeFromEnv("SECRETSHIM_AGENT_EXE"), {L"--service", L"--pipe", L"secretshim-svc-none"});
    CHECK(r.exitCode == 1);
    CHECK(oneLine(r.err));
    CHECK(has(r.err, "secretshimd: --service is for the service control manager"));
}

TEST_CASE("--help names the service commands, and hides --service") {
    const std::wstring agent = exeFromEnv("SECRETSHIM_AGENT_EXE");
    const RunResult help = run(agent, {L"--help"});
    CHECK(help.exitCode == 0);
    CHECK(has(help.out, "service"));
    CHECK(has(help.out, "install or uninstall the agent as a Windows service"));
    CHECK_FALSE(has(help.out, "--service"));
    const RunResult installHelp = run(agent, {L"service", L"install", L"--help"});
    CHECK(installHelp.exitCode == 0);
    CHECK(has(installHelp.out, "--name"));
    CHECK(has(installHelp.out, "automatic start, LocalSystem"));
}
