#include "plugin/windows/agent_cli.hpp"

#include <windows.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <mutex>
#include <thread>

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

int runAgent(int argc, char** argv, platform::WinFs& fs) {
    CLI::App app{"secretshimd: the secretshim node agent (Windows)"};
    std::string pipe(kDefaultPipe), stateDir(kDefaultStateDir);
    std::size_t maxPayload = mountfs::kDefaultMaxPayload;
    app.add_option("--pipe", pipe, "named pipe to serve (NAME or \\\\.\\pipe\\NAME)")->capture_default_str();
    app.add_option("--state-dir", stateDir, "state directory (node key, secrets, task records)")->capture_default_str();
    app.add_option("--max-payload", maxPayload, "largest secret in bytes")->check(CLI::Range(1, 16 * 1024 * 1024));
    CLI11_PARSE(app, argc, argv);

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
        return die(Error{0, "must run as SYSTEM or an elevated administrator (it writes into containers' "
                            "filesystems, and only Administrators and SYSTEM may open its pipe)"});
    auto path = pipePath(pipe);
    if (!path) return die(path.error());
    auto dir = absoluteDirectory(stateDir);
    if (!dir) return die(dir.error());
    auto store = WinLocalStore::open(*dir, maxPayload);
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
