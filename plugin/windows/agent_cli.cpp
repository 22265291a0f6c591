#include "plugin/windows/agent_cli.hpp"

#include <windows.h>

#include <cstdio>
#include <mutex>
#include <thread>

#include "plugin/windows/command_lines.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/windows/state_files.hpp"
#include "plugin/windows/win_agent.hpp"

namespace secretshim::plugin {
namespace {

// SYSTEM's token holds the Administrators group too; a UAC-filtered
// (not elevated) administrator's token holds it deny-only, which fails.
bool elevated() {
    BYTE admins[SECURITY_MAX_SID_SIZE];
    DWORD size = sizeof admins;
    BOOL member = FALSE;
    return ::CreateWellKnownSid(WinBuiltinAdministratorsSid, nullptr, admins, &size) &&
           ::CheckTokenMembership(nullptr, admins, &member) && member;
}

}  // namespace

int runAgent(int argc, char** argv, platform::WinFs& fs, ExistingDirectory stateDir) {
    AgentArgs args;
    if (const int code = parseAgentArgs(argc, argv, args); code >= 0) return code;
    const std::string& pipe = args.pipe;

    static std::mutex logMutex;
    const LogFn log = [](const std::string& line) {
        std::lock_guard lock(logMutex);
        std::fprintf(stderr, "secretshimd: %s\n", line.c_str());
        std::fflush(stderr);
    };
    const auto die = [&](const Error& error) {
        log(error.message);
        return 1;
    };
    if (!elevated())
        return die(Error{.message = "must run as SYSTEM or an elevated administrator (it writes into containers' "
                            "filesystems, and only Administrators and SYSTEM may open its pipe)"});
    auto path = pipePath(pipe);
    if (!path) return die(path.error());
    auto dir = absoluteDirectory(args.stateDir);
    if (!dir) return die(dir.error());
    auto store = WinLocalStore::open(*dir, args.maxPayload, stateDir);
    if (!store) return die(store.error());
    auto agent = WinAgent::open(std::move(*store), fs, log);
    if (!agent) return die(agent.error());
    auto listener = PipeListener::create(*path);
    if (!listener) return die(listener.error());
    log("serving " + pipe + " (" + std::to_string((*agent)->taskCount()) + " task(s) adopted)");

    WinAgent* shared = agent->get();  // lives until the process exits
    for (;;) {
        auto connection = listener->accept();
        if (!connection) {
            log(connection.error().message);
            ::Sleep(100);
            continue;
        }
        // One thread per client: a slow or silent client (each read times
        // out) never holds up the others; requests take the agent's lock.
        std::thread([shared, c = std::move(*connection)]() mutable { shared->serve(c); }).detach();
    }
}

}  // namespace secretshim::plugin
