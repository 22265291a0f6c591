#include "plugin/windows/agent_cli.hpp"

#include <windows.h>

#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "platform/windows/utf16.hpp"
#include "plugin/windows/command_lines.hpp"
#include "plugin/windows/elevation.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/windows/service_install.hpp"
#include "plugin/windows/service_main.hpp"
#include "plugin/windows/state_files.hpp"
#include "plugin/windows/win_agent.hpp"

namespace secretshim::plugin {
namespace {

// Serves the pipe until `stop` is set (a console run passes none: Ctrl+C
// ends the process). Calls `serving` once clients can connect.
int serve(const AgentArgs& args, platform::WinFs& fs, ExistingDirectory stateDir, const LogFn& log, HANDLE stop,
          const std::function<void()>& serving) {
    const auto die = [&](const Error& error) {
        log(error.message);
        return 1;
    };
    if (!runsElevated())
        return die(Error{.message = "must run as SYSTEM or an elevated administrator (it writes into containers' "
                            "filesystems, and only Administrators and SYSTEM may open its pipe)"});
    auto path = pipePath(args.pipe);
    if (!path) return die(path.error());
    auto dir = absoluteDirectory(args.stateDir);
    if (!dir) return die(dir.error());
    auto store = WinLocalStore::open(*dir, args.maxPayload, stateDir);
    if (!store) return die(store.error());
    auto agent = WinAgent::open(std::move(*store), fs, log);
    if (!agent) return die(agent.error());
    auto listener = PipeListener::create(*path);
    if (!listener) return die(listener.error());
    log("serving " + args.pipe + " (" + std::to_string((*agent)->taskCount()) + " task(s) adopted)");
    serving();

    // Shared with the connection threads, which may outlive this function
    // (a stop does not wait for idle clients): never freed.
    WinAgent* shared = agent->release();
    for (;;) {
        auto connection = listener->accept(stop);
        if (!connection) {
            if (stop != nullptr && ::WaitForSingleObject(stop, 0) == WAIT_OBJECT_0) break;
            log(connection.error().message);
            ::Sleep(100);
            continue;
        }
        // One thread per client: a slow or silent client (each read times
        // out) never holds up the others; requests take the agent's lock.
        std::thread([shared, c = std::move(*connection)]() mutable { shared->serve(c); }).detach();
    }
    // The listening instance goes first, so no new client connects; then
    // the request in progress, if any, finishes. Connected clients' pipe
    // instances close when the process exits.
    { PipeListener closing = std::move(*listener); }
    shared->stop();
    log("stopped (" + std::to_string(shared->taskCount()) + " prepared task(s) keep their files; the next start "
        "adopts them)");
    return 0;
}

}  // namespace

int runAgent(int argc, char** argv, platform::WinFs& fs, ExistingDirectory stateDir) {
    AgentArgs args;
    if (const int code = parseAgentArgs(argc, argv, args); code >= 0) return code;

    static std::mutex logMutex;
    const LogFn toStderr = [](const std::string& line) {
        std::lock_guard lock(logMutex);
        std::fprintf(stderr, "secretshimd: %s\n", line.c_str());
        std::fflush(stderr);
    };
    switch (args.mode) {
    case AgentArgs::Mode::install: {
        auto line = installService(args);
        if (!line) {
            toStderr(line.error().message);
            return 1;
        }
        std::printf("installed the service \"%s\" (automatic start, LocalSystem): %s\nstart it with: sc start %s\n",
                    args.serviceName.c_str(), platform::toUtf8(*line).c_str(), args.serviceName.c_str());
        return 0;
    }
    case AgentArgs::Mode::uninstall: {
        if (auto ok = uninstallService(args); !ok) {
            toStderr(ok.error().message);
            return 1;
        }
        std::printf("uninstalled the service \"%s\"\n", args.serviceName.c_str());
        return 0;
    }
    case AgentArgs::Mode::service:
        return runAsService([&](HANDLE stop, const std::function<void()>& serving, const LogFn& log) {
            return serve(args, fs, stateDir, log, stop, serving);
        });
    case AgentArgs::Mode::run:
        break;
    }
    return serve(args, fs, stateDir, toStderr, nullptr, [] {});
}

}  // namespace secretshim::plugin
