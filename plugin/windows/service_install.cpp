#include "plugin/windows/service_install.hpp"

#include <windows.h>
#include <shellapi.h>

#include <memory>
#include <type_traits>
#include <vector>

#include "platform/windows/utf16.hpp"
#include "platform/windows/win_error.hpp"
#include "plugin/windows/elevation.hpp"
#include "plugin/windows/pipe_protocol.hpp"

namespace secretshim::plugin {
namespace {

using platform::failWin32;

struct ScHandleCloser {
    void operator()(SC_HANDLE h) const { ::CloseServiceHandle(h); }
};
using ScHandle = std::unique_ptr<std::remove_pointer_t<SC_HANDLE>, ScHandleCloser>;

constexpr DWORD kStopWaitMs = 30000;
constexpr const wchar_t* kDescription =
    L"secretshim node agent: delivers secrets into this node's containers when the orchestrator's hook asks "
    L"(secretshim-hook.exe), keeps them encrypted in its state directory, and serves the admin-only named pipe.";

std::string shown(const AgentArgs& args) { return "service " + quote(args.serviceName); }

Result<std::wstring> thisProgram() {
    std::wstring path(MAX_PATH, L'\0');
    for (;;) {
        const DWORD n = ::GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
        if (n == 0) return platform::failLastError("finding this program's path");
        if (n < path.size()) {
            path.resize(n);
            return path;
        }
        path.resize(path.size() * 2);
    }
}

// The file name of a path, upper-cased as NTFS compares names.
std::wstring fileName(const std::wstring& path) {
    std::wstring name = path.substr(path.find_last_of(L"\\/") + 1);
    for (wchar_t& c : name) c = static_cast<wchar_t>(::towupper(c));
    return name;
}

Result<ScHandle> openManager(DWORD access, const std::string& what) {
    if (!runsElevated())
        return fail(what + " needs an elevated administrator (run it from a console opened with \"Run as "
                           "administrator\")");
    ScHandle manager(::OpenSCManagerW(nullptr, nullptr, access));
    if (!manager) return platform::failLastError(what + ": opening the service control manager");
    return manager;
}

// A relative --state-dir means the installer's working directory, not the
// service's (System32): it is made absolute here.
Result<std::wstring> absolutePath(const std::string& path) {
    auto wide = platform::toUtf16(path);
    if (!wide) return propagate(wide, "--state-dir");
    if (wide->empty()) return fail("--state-dir is empty");
    if (wide->starts_with(L"\\\\?\\")) return *wide;
    wchar_t full[MAX_PATH * 4] = {};
    const DWORD n = ::GetFullPathNameW(wide->c_str(), static_cast<DWORD>(std::size(full)), full, nullptr);
    if (n == 0 || n >= std::size(full)) return platform::failLastError("resolving --state-dir " + quote(path));
    return std::wstring(full, n);
}

Result<std::wstring> serviceCommandLine(const AgentArgs& args) {
    auto program = thisProgram();
    if (!program) return propagate(program);
    std::wstring line = quoteArgument(*program) + L" --service";
    for (const auto& [option, value] : args.given) {
        std::wstring wideValue;
        if (option == "--state-dir") {
            auto absolute = absolutePath(value);
            if (!absolute) return propagate(absolute);
            wideValue = *absolute;
        } else {
            if (option == "--pipe")
                if (auto ok = pipePath(value); !ok) return propagate(ok);
            auto wide = platform::toUtf16(value);
            if (!wide) return propagate(wide, option);
            wideValue = *wide;
        }
        line += L" " + std::wstring(option.begin(), option.end()) + L" " + quoteArgument(wideValue);
    }
    return line;
}

Result<SERVICE_STATUS_PROCESS> queryStatus(SC_HANDLE service, const std::string& what) {
    SERVICE_STATUS_PROCESS status{};
    DWORD needed = 0;
    if (!::QueryServiceStatusEx(service, SC_STATUS_PROCESS_INFO, reinterpret_cast<BYTE*>(&status), sizeof status,
                                &needed))
        return platform::failLastError(what + ": querying its status");
    return status;
}

// Refuses to touch a service whose command line is not this program's
// with --service: `uninstall --name Spooler` must not delete the spooler.
Result<void> checkRunsThisProgram(SC_HANDLE service, const std::string& what) {
    DWORD needed = 0;
    ::QueryServiceConfigW(service, nullptr, 0, &needed);
    std::vector<unsigned char> buffer(needed + sizeof(QUERY_SERVICE_CONFIGW));
    auto* config = reinterpret_cast<QUERY_SERVICE_CONFIGW*>(buffer.data());
    if (!::QueryServiceConfigW(service, config, static_cast<DWORD>(buffer.size()), &needed))
        return platform::failLastError(what + ": reading its configuration");
    const std::wstring line = config->lpBinaryPathName != nullptr ? config->lpBinaryPathName : L"";
    auto program = thisProgram();
    if (!program) return propagate(program);
    int count = 0;
    LPWSTR* argv = ::CommandLineToArgvW(line.c_str(), &count);
    bool ours = false;
    for (int i = 1; argv != nullptr && i < count && !ours; ++i) ours = std::wstring(argv[i]) == L"--service";
    ours = ours && fileName(argv[0]) == fileName(*program);
    if (argv != nullptr) ::LocalFree(argv);
    if (!ours)
        return fail(what + " does not run " + platform::toUtf8(fileName(*program)) + " --service (its command line is " +
                    quote(platform::toUtf8(line)) + "); not touching it");
    return {};
}

}  // namespace

std::wstring quoteArgument(const std::wstring& arg) {
    if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) return arg;
    // Backslashes are literal except before a quote: double those, and the
    // ones before the closing quote.
    std::wstring out = L"\"";
    for (std::size_t i = 0;; ++i) {
        std::size_t backslashes = 0;
        while (i < arg.size() && arg[i] == L'\\') {
            ++backslashes;
            ++i;
        }
        if (i == arg.size()) {
            out.append(backslashes * 2, L'\\');
            break;
        }
        if (arg[i] == L'"') {
            out.append(backslashes * 2 + 1, L'\\');
        } else {
            out.append(backslashes, L'\\');
        }
        out += arg[i];
    }
    return out + L"\"";
}

Result<std::wstring> installService(const AgentArgs& args) {
    const std::string what = "service install";
    auto line = serviceCommandLine(args);
    if (!line) return propagate(line, what);
    auto name = platform::toUtf16(args.serviceName);
    if (!name || name->empty() || name->size() > 256 || name->find_first_of(L"/\\") != std::wstring::npos)
        return fail(what + ": --name " + quote(args.serviceName) + " is not a service name (1 to 256 characters, no / or \\)");
    auto manager = openManager(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE, what);
    if (!manager) return propagate(manager);
    const std::wstring display =
        args.serviceName == kDefaultServiceName ? L"secretshim agent" : L"secretshim agent (" + *name + L")";
    ScHandle service(::CreateServiceW(manager->get(), name->c_str(), display.c_str(),
                                      SERVICE_CHANGE_CONFIG | SERVICE_QUERY_CONFIG | DELETE,
                                      SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL,
                                      line->c_str(), nullptr, nullptr, nullptr,
                                      nullptr /* LocalSystem */, nullptr));
    if (!service) {
        const DWORD code = ::GetLastError();
        if (code == ERROR_SERVICE_EXISTS)
            return fail(what + ": " + shown(args) + " is already installed (to change it: secretshimd service "
                                                     "uninstall --name " + args.serviceName + ", then install again)");
        if (code == ERROR_DUPLICATE_SERVICE_NAME)
            return fail(what + ": another service is already shown as " + quote(platform::toUtf8(display)) +
                        " (choose another --name)");
        if (code == ERROR_SERVICE_MARKED_FOR_DELETE)
            return fail(what + ": " + shown(args) + " is still being deleted (close the Services console and any "
                                                     "program that holds it open, then retry)");
        return failWin32(what + ": creating " + shown(args), code);
    }
    std::wstring description = kDescription;
    SERVICE_DESCRIPTIONW describe{description.data()};
    // Restarted after a crash, as systemd's Restart=on-failure does on Linux:
    // three times, 5 s apart; the count resets after a day.
    SC_ACTION restart[] = {{SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 5000}};
    SERVICE_FAILURE_ACTIONSW failure{};
    failure.dwResetPeriod = 24 * 3600;
    failure.cActions = static_cast<DWORD>(std::size(restart));
    failure.lpsaActions = restart;
    if (!::ChangeServiceConfig2W(service.get(), SERVICE_CONFIG_DESCRIPTION, &describe) ||
        !::ChangeServiceConfig2W(service.get(), SERVICE_CONFIG_FAILURE_ACTIONS, &failure)) {
        const DWORD code = ::GetLastError();
        ::DeleteService(service.get());  // all or nothing
        return failWin32(what + ": configuring " + shown(args), code);
    }
    return *line;
}

Result<void> uninstallService(const AgentArgs& args) {
    const std::string what = "service uninstall";
    auto name = platform::toUtf16(args.serviceName);
    if (!name) return propagate(name, what + ": --name");
    auto manager = openManager(SC_MANAGER_CONNECT, what);
    if (!manager) return propagate(manager);
    ScHandle service(::OpenServiceW(manager->get(), name->c_str(),
                                    SERVICE_STOP | SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG | DELETE));
    if (!service) {
        const DWORD code = ::GetLastError();
        if (code == ERROR_SERVICE_DOES_NOT_EXIST) return fail(what + ": " + shown(args) + " is not installed");
        return failWin32(what + ": opening " + shown(args), code);
    }
    if (auto ours = checkRunsThisProgram(service.get(), what + ": " + shown(args)); !ours) return propagate(ours);
    auto status = queryStatus(service.get(), what + ": " + shown(args));
    if (!status) return propagate(status);
    if (status->dwCurrentState != SERVICE_STOPPED) {
        SERVICE_STATUS ignored{};
        if (!::ControlService(service.get(), SERVICE_CONTROL_STOP, &ignored) &&
            ::GetLastError() != ERROR_SERVICE_NOT_ACTIVE && ::GetLastError() != ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
            return platform::failLastError(what + ": stopping " + shown(args));
        const ULONGLONG deadline = ::GetTickCount64() + kStopWaitMs;
        for (;;) {
            status = queryStatus(service.get(), what + ": " + shown(args));
            if (!status) return propagate(status);
            if (status->dwCurrentState == SERVICE_STOPPED) break;
            if (::GetTickCount64() >= deadline)
                return fail(what + ": " + shown(args) + " did not stop within " + std::to_string(kStopWaitMs / 1000) +
                            " s; it is still installed");
            ::Sleep(100);
        }
    }
    if (!::DeleteService(service.get())) {
        const DWORD code = ::GetLastError();
        if (code == ERROR_SERVICE_MARKED_FOR_DELETE)
            return fail(what + ": " + shown(args) + " is already being deleted");
        return failWin32(what + ": deleting " + shown(args), code);
    }
    return {};
}

}  // namespace secretshim::plugin
