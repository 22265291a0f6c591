#include "plugin/windows/service_main.hpp"

#include <cstdio>
#include <mutex>
#include <string>

#include "platform/windows/unique_handle.hpp"
#include "platform/windows/utf16.hpp"

namespace secretshim::plugin {
namespace {

// The SCM calls ServiceMain and the handler with no context of ours (the
// handler gets one, ServiceMain does not): one service per process.
struct ServiceState {
    ServeFn serve;
    std::mutex mutex;  // status_, from ServiceMain's thread and the handler's
    SERVICE_STATUS_HANDLE handle = nullptr;
    SERVICE_STATUS status{};
    platform::UniqueHandle stop;
};
ServiceState* g_state = nullptr;

void report(ServiceState& state, DWORD current, DWORD waitHint = 0, int exitCode = 0) {
    std::lock_guard lock(state.mutex);
    SERVICE_STATUS& s = state.status;
    s.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    s.dwCurrentState = current;
    // Stop and shutdown only while running: a start cannot be stopped
    // halfway (the SCM then waits for it, or for the process to end).
    s.dwControlsAccepted = current == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
    s.dwWin32ExitCode = exitCode == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR;
    s.dwServiceSpecificExitCode = static_cast<DWORD>(exitCode);
    const bool pending = current == SERVICE_START_PENDING || current == SERVICE_STOP_PENDING;
    s.dwCheckPoint = pending ? s.dwCheckPoint + 1 : 0;
    s.dwWaitHint = waitHint;
    ::SetServiceStatus(state.handle, &s);
}

DWORD WINAPI handler(DWORD control, DWORD /*type*/, void* /*data*/, void* context) {
    auto& state = *static_cast<ServiceState*>(context);
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        report(state, SERVICE_STOP_PENDING, 10000);
        ::SetEvent(state.stop.get());
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

// One event per line, information level, in the Application log. No
// message file is registered: Event Viewer shows the line under "the
// following information was included with the event".
LogFn eventLog(const wchar_t* source) {
    HANDLE log = ::RegisterEventSourceW(nullptr, source);  // lives as long as the process
    return [log](const std::string& line) {
        if (log == nullptr) return;
        auto wide = platform::toUtf16(line);
        const std::wstring text = wide ? L"secretshimd: " + *wide : L"secretshimd: (a line that is not UTF-8)";
        const wchar_t* strings[] = {text.c_str()};
        ::ReportEventW(log, EVENTLOG_INFORMATION_TYPE, 0, 0, nullptr, 1, 0, strings, nullptr);
    };
}

void WINAPI serviceMain(DWORD argc, LPWSTR* argv) {
    ServiceState& state = *g_state;
    // For a service of its own process the SCM passes its name first.
    const wchar_t* name = argc > 0 && argv[0] != nullptr ? argv[0] : L"secretshimd";
    state.handle = ::RegisterServiceCtrlHandlerExW(name, handler, &state);
    if (state.handle == nullptr) return;  // the SCM gave up on us; nothing to report to
    report(state, SERVICE_START_PENDING, 30000);
    state.stop.reset(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
    const LogFn log = eventLog(name);
    if (!state.stop) {
        log("cannot create the stop event (Win32 error " + std::to_string(::GetLastError()) + ")");
        report(state, SERVICE_STOPPED, 0, 1);
        return;
    }
    const int code = state.serve(state.stop.get(), [&] { report(state, SERVICE_RUNNING); }, log);
    report(state, SERVICE_STOPPED, 0, code);
}

}  // namespace

int runAsService(ServeFn serve) {
    static ServiceState state;
    state.serve = std::move(serve);
    g_state = &state;
    // For SERVICE_WIN32_OWN_PROCESS the name in the table is not checked.
    wchar_t anyName[] = L"";
    const SERVICE_TABLE_ENTRYW table[] = {{anyName, serviceMain}, {nullptr, nullptr}};
    if (!::StartServiceCtrlDispatcherW(table)) {
        const DWORD code = ::GetLastError();
        if (code == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
            std::fprintf(stderr, "secretshimd: --service is for the service control manager; in a console, run "
                                 "secretshimd.exe without it\n");
        else
            std::fprintf(stderr, "secretshimd: cannot connect to the service control manager (Win32 error %lu)\n",
                         static_cast<unsigned long>(code));
        return 1;
    }
    return 0;
}

}  // namespace secretshim::plugin
