// secretshim-nri: the NRI plugin (containerd >= 1.7, CRI-O >= 1.26). The
// runtime starts it itself from its plugin directory (its socket on the fd
// NRI_PLUGIN_SOCKET names) and it lives as long as that connection; or, with
// --nri-socket, it connects to the runtime's NRI socket and reconnects
// whenever the runtime restarts. docs/kubernetes.md says which to use.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "platform/linux/unique_fd.hpp"
#include "plugin/nri/relay.hpp"
#include "plugin/nri/session.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

void log(const std::string& line) { std::fprintf(stderr, "secretshim-nri: %s\n", line.c_str()); }

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

Result<platform::UniqueFd> connectRuntime(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return fail("the NRI socket path is too long: " + path);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    platform::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return failErrno("socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return failErrno("connecting to the runtime's NRI socket " + path);
    return fd;
}

std::string envOr(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"secretshim-nri: the secretshim plugin for NRI (containerd >= 1.7, CRI-O >= 1.26)"};
    std::string socket(kDefaultSocket);
    std::string hook = SECRETSHIM_HOOK_PATH;
    std::string nriSocket;
    std::string index = envOr("NRI_PLUGIN_IDX", "50");
    app.add_option("--socket", socket, "the agent's socket")->capture_default_str();
    app.add_option("--hook", hook, "the hook the runtime is to run")->capture_default_str();
    app.add_option("--nri-socket", nriSocket,
                   "connect to the runtime's NRI socket (e.g. /var/run/nri/nri.sock) and reconnect when it "
                   "restarts; without it, the runtime started this plugin and handed it NRI_PLUGIN_SOCKET");
    app.add_option("--index", index, "the plugin's place among the runtime's plugins (two digits)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    const std::string name = envOr("NRI_PLUGIN_NAME", "secretshim");
    nri::Relay relay(socket, hook);

    if (nriSocket.empty()) {
        const char* inherited = std::getenv("NRI_PLUGIN_SOCKET");
        char* end = nullptr;
        const long fd = inherited ? std::strtol(inherited, &end, 10) : -1;
        if (!inherited || *end != '\0' || fd < 3 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) {
            log("no NRI connection: the runtime starts this plugin with NRI_PLUGIN_SOCKET set; or give --nri-socket");
            return 2;
        }
        auto done = serve(static_cast<int>(fd), relay, name, index);
        if (!done) {
            log(done.error().message);
            return 1;
        }
        log("the runtime closed the connection");
        return 0;
    }
    // Until it is stopped: a restarted runtime makes a new socket.
    bool reported = false;
    for (;;) {
        auto fd = connectRuntime(nriSocket);
        if (!fd) {
            if (!reported) log(fd.error().message + " (retrying every second)");
            reported = true;
            std::this_thread::sleep_for(std::chrono::seconds(1));
            continue;
        }
        reported = false;
        log("connected to " + nriSocket);
        auto done = serve(fd->get(), relay, name, index);
        log(done ? "the runtime closed the connection" : done.error().message);
    }
}
