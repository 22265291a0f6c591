// secretshim-nri: the NRI plugin (containerd >= 1.7, CRI-O >= 1.26). The
// runtime starts it itself from its plugin directory, hands it the NRI
// connection on the fd NRI_PLUGIN_SOCKET names, and starts it again when the
// runtime restarts: it lives as long as that connection. A plugin that
// connected to the runtime's NRI socket by itself would be missed by every
// container created before it registers (docs/DESIGN.md).
//
// But a runtime that cannot require a plugin (containerd 1.7) never starts
// a pre-launched one again while it runs: were it to die, the containers
// created after would start without their secrets. So it forks, before it
// serves anything, its standby: a second instance that registers through
// the runtime's socket once the runtime listens (after every pre-launched
// plugin registered) and lives as long as its own connection. Each is the
// other's backup (relay.hpp says how they share the work); only both gone
// leaves the gap, until the runtime restarts.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "mountfs/base/log.hpp"
#include "mountfs/base/version.hpp"
#include "platform/linux/mount_api.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/nri/relay.hpp"
#include "plugin/nri/session.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

void log(std::string_view line) { logLine("secretshim-nri", line); }

Result<void> writeAll(int fd, const std::string& bytes) {
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("writing to the runtime");
        done += static_cast<std::size_t>(n);
    }
    return {};
}

// Serves one connection until the runtime closes it (Ok) or it breaks.
Result<void> serve(int fd, nri::Handler& handler, const std::string& name, const std::string& index) {
    nri::Session session(handler, name, index);
    auto hello = session.start();
    if (!hello) return propagate(hello);
    if (auto ok = writeAll(fd, *hello); !ok) return ok;
    std::string buffer(64 * 1024, '\0');
    for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("reading from the runtime");
        if (n == 0) return {};
        auto out = session.feed({reinterpret_cast<const unsigned char*>(buffer.data()), static_cast<std::size_t>(n)});
        if (!out) return propagate(out);
        if (auto ok = writeAll(fd, *out); !ok) return ok;
    }
}

// How long the standby waits for the runtime's socket: the runtime listens
// once its pre-launched plugins registered (each within containerd's 5 s
// plugin_registration_timeout).
constexpr std::chrono::seconds kStandbyPatience{30};

bool alive(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;  // readable once the process exited
}

// The standby's life (the child of the pre-launched instance `primary`):
// connected to the runtime's socket, it serves until the runtime closes it.
// It gives up if the primary exits before it registered: the runtime is
// stopping, or never took the primary.
int standBy(pid_t primary, const std::string& runtimeSocket, const std::string& agentSocket,
            const std::string& hook, const std::string& name, const std::string& index) {
    platform::UniqueFd peer(platform::sysPidfdOpen(primary, 0));
    if (!peer || ::getppid() != primary) return 0;
    nri::Relay relay(agentSocket, hook);
    relay.standBy([fd = peer.get()] { return alive(fd); });
    sockaddr_un addr{};
    if (runtimeSocket.size() >= sizeof addr.sun_path) {
        log("no standby: the runtime's socket path is too long: " + runtimeSocket);
        return 1;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, runtimeSocket.data(), runtimeSocket.size());
    const auto until = std::chrono::steady_clock::now() + kStandbyPatience;
    for (;;) {
        if (!alive(peer.get())) return 0;
        platform::UniqueFd conn(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!conn) {
            log(std::string("no standby: socket: ") + std::strerror(errno));
            return 1;
        }
        if (::connect(conn.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
            log("standby (pid " + std::to_string(::getpid()) + ") connected to " + runtimeSocket);
            auto done = serve(conn.get(), relay, name + "-standby", index);
            if (!done) log("standby: " + done.error().message);
            return done ? 0 : 1;
        }
        if (std::chrono::steady_clock::now() >= until) {
            log("no standby: nothing accepts NRI plugins at " + runtimeSocket + " (" + std::strerror(errno) +
                "; the runtime's socket_path, and disable_connections = false?)");
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

std::string envOr(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"secretshim-nri: the secretshim plugin for NRI (containerd >= 1.7, CRI-O >= 1.26)"};
    app.set_version_flag("--version", std::string("secretshim-nri ") + versionString());
    std::string socket(kDefaultSocket);
    std::string hook = SECRETSHIM_HOOK_PATH;
    std::string index = envOr("NRI_PLUGIN_IDX", "50");
    app.add_option("--socket", socket, "the agent's socket")->capture_default_str();
    app.add_option("--hook", hook, "the hook the runtime is to run")->capture_default_str();
    app.add_option("--index", index, "the plugin's place among the runtime's plugins (two digits)")
        ->capture_default_str();
    std::string runtimeSocket = "/var/run/nri/nri.sock";
    app.add_option("--runtime-socket", runtimeSocket,
                   "the runtime's NRI socket, where the standby registers (its socket_path)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    const std::string name = envOr("NRI_PLUGIN_NAME", "secretshim");

    const char* inherited = std::getenv("NRI_PLUGIN_SOCKET");
    char* end = nullptr;
    const long fd = inherited ? std::strtol(inherited, &end, 10) : -1;
    if (!inherited || *end != '\0' || fd < 3 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) {
        log("no NRI connection: the runtime starts this plugin from its NRI plugin directory, with "
            "NRI_PLUGIN_SOCKET set");
        return 2;
    }
    const pid_t primary = ::getpid();
    ::signal(SIGCHLD, SIG_IGN);  // the standby is never waited for
    const pid_t child = ::fork();
    if (child < 0) log(std::string("no standby: fork: ") + std::strerror(errno));
    if (child == 0) {
        ::close(static_cast<int>(fd));  // the runtime must see the primary's connection close with it
        return standBy(primary, runtimeSocket, socket, hook, name, index);
    }
    nri::Relay relay(socket, hook);
    auto done = serve(static_cast<int>(fd), relay, name, index);
    if (!done) {
        log(done.error().message);
        return 1;
    }
    log("the runtime closed the connection");
    return 0;
}
