// secretshim-nri: the NRI plugin (containerd >= 1.7, CRI-O >= 1.26). The
// runtime starts it itself from its plugin directory, hands it the NRI
// connection on the fd NRI_PLUGIN_SOCKET names, and starts it again when the
// runtime restarts: it lives as long as that connection. It never connects
// to the runtime's NRI socket by itself: a plugin that does is missed by
// every container created while it is away (docs/DESIGN.md).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "mountfs/base/log.hpp"
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

std::string envOr(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"secretshim-nri: the secretshim plugin for NRI (containerd >= 1.7, CRI-O >= 1.26)"};
    std::string socket(kDefaultSocket);
    std::string hook = SECRETSHIM_HOOK_PATH;
    std::string index = envOr("NRI_PLUGIN_IDX", "50");
    app.add_option("--socket", socket, "the agent's socket")->capture_default_str();
    app.add_option("--hook", hook, "the hook the runtime is to run")->capture_default_str();
    app.add_option("--index", index, "the plugin's place among the runtime's plugins (two digits)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    const std::string name = envOr("NRI_PLUGIN_NAME", "secretshim");
    nri::Relay relay(socket, hook);

    const char* inherited = std::getenv("NRI_PLUGIN_SOCKET");
    char* end = nullptr;
    const long fd = inherited ? std::strtol(inherited, &end, 10) : -1;
    if (!inherited || *end != '\0' || fd < 3 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) {
        log("no NRI connection: the runtime starts this plugin from its NRI plugin directory, with "
            "NRI_PLUGIN_SOCKET set");
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
