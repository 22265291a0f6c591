// secretshimd: the per-node agent. Runs in the foreground, logs one entry
// per event (secret names, never values) to the journal or to stderr
// (plugin/agent/log.hpp), reads its configuration again on SIGHUP, exits on
// SIGTERM.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "mountfs/base/version.hpp"
#include "platform/linux/features.hpp"
#include "plugin/agent/agent.hpp"
#include "plugin/agent/cluster_source.hpp"
#include "plugin/agent/local_source.hpp"
#include "plugin/agent/metrics_listener.hpp"
#include "plugin/agent/metrics_textfile.hpp"
#include "plugin/agent/log.hpp"
#include "plugin/agent/service_notify.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

struct Flags {
    std::string configPath, socket, stateDir, runtimeDir;
};

int failed(const std::string& message) {
    log(message, {.level = LogLevel::err});
    return 1;
}

// Plaintext passes through this process: no core dumps, no ptrace by
// non-root, no swap-out of the pages we lock.
void hardenProcess() {
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const rlimit noCore{0, 0};
    ::setrlimit(RLIMIT_CORE, &noCore);
}

// The config file (or the defaults) with the flags over it.
Result<AgentConfig> loadConfig(const Flags& flags) {
    auto config = flags.configPath.empty() ? Result<AgentConfig>(AgentConfig{}) : loadAgentConfig(flags.configPath);
    if (!config) return config;
    if (!flags.socket.empty()) config->socket = flags.socket;
    if (!flags.stateDir.empty()) config->stateDir = flags.stateDir;
    if (!flags.runtimeDir.empty()) config->runtimeDir = flags.runtimeDir;
    if (config->runtimeDir.empty()) {
        const auto slash = config->socket.rfind('/');
        config->runtimeDir = slash == std::string::npos ? "." : slash == 0 ? "/" : config->socket.substr(0, slash);
    }
    return config;
}

// Refuses a kernel that lacks what secrets views need, or whose tmpfs
// cannot keep them out of swap unless the config allows it.
Result<void> checkKernel(const platform::KernelFeatures& features, const AgentConfig& config) {
    if (!features.sufficient())
        return fail("the kernel lacks what secrets views need (" + features.describe() + ")");
    if (auto ok = checkSwapPolicy(features.tmpfsNoswap, config); !ok) return ok;
    if (!features.tmpfsNoswap)
        log("allow_swap: true: secrets views may be swapped out (the kernel has no tmpfs noswap)",
            {.level = LogLevel::warning});
    return {};
}

// One source of secrets: the embedded store with its grants, or etcd
// (whose watch starts once the running containers are re-adopted).
struct Sources {
    std::unique_ptr<LocalSource> local;
    std::unique_ptr<ClusterSource> cluster;
};

Result<Sources> openSource(boost::asio::io_context& io, const AgentConfig& config) {
    Sources sources;
    if (config.source == "etcd") {
        auto source = ClusterSource::create(io, config);
        if (!source) return propagate(source);
        sources.cluster = std::move(*source);
        return sources;
    }
    StoreOptions storeOptions;
    storeOptions.maxPayload = config.maxPayload;
    std::vector<std::string> problems;
    auto source = LocalSource::open(config.stateDir, storeOptions, problems);
    if (!source) return propagate(source);
    for (const auto& p : problems) log(p, {.level = LogLevel::warning});
    sources.local = std::move(*source);
    return sources;
}

// metrics_listen: the metrics page over HTTP on the agent's io_context, or
// nothing (the default).
Result<std::unique_ptr<MetricsListener>> openMetrics(boost::asio::io_context& io, Agent& agent,
                                                     const AgentConfig& config) {
    if (!config.metricsListen) return nullptr;
    auto listener = MetricsListener::open(io, *config.metricsListen, [&agent] { return agent.metricsText(); });
    if (!listener) return listener;
    const bool local = config.metricsListen->host.rfind("127.", 0) == 0 || config.metricsListen->host == "::1";
    std::fprintf(stderr, "secretshimd: metrics on http://%s/metrics%s\n", config.metricsListen->text().c_str(),
                 local ? "" : " (not a loopback address: other hosts reach it unless a firewall stops them)");
    return listener;
}

std::string joined(const std::vector<std::string>& keys) {
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out;
}

// SIGHUP: the file read again, as at start (the flags over it). What can
// change live changes for the requests that follow; what cannot keeps its
// running value, named in one line; a file that no longer parses changes
// nothing. Running containers' views are untouched either way.
void reload(Agent& agent, AgentConfig& running, const Flags& flags) {
    if (flags.configPath.empty()) {
        log("reload: no configuration file (--config): nothing changed", {.level = LogLevel::warning});
        return;
    }
    auto next = loadConfig(flags);
    if (!next) {
        log("reload refused, the running configuration is kept: " + next.error().message,
            {.level = LogLevel::warning});
        return;
    }
    auto r = reloadConfig(running, *next);
    if (!r.kept.empty())
        log("reload: " + joined(r.kept) + " cannot change while the agent runs (restart it): kept",
            {.level = LogLevel::warning});
    running = std::move(r.config);
    agent.reconfigure(running);
    setLogLevel(running.logLevel);
    log("reloaded " + flags.configPath + ": " +
        (r.changed.empty() ? "nothing changed" : "changed " + joined(r.changed)));
}

void onHangup(boost::asio::signal_set& hangup, Agent& agent, AgentConfig& running, const Flags& flags) {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        reload(agent, running, flags);
        onHangup(hangup, agent, running, flags);
    });
}

// Serves until SIGTERM or SIGINT; SIGHUP reloads.
int serve(boost::asio::io_context& io, Agent& agent, ClusterSource* cluster, AgentConfig& config,
          const Flags& flags, const platform::KernelFeatures& features) {
    boost::asio::signal_set hangup(io, SIGHUP);
    onHangup(hangup, agent, config, flags);
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) {
        log("stopping");
        notifyStopping();
        hangup.cancel();
        agent.stop();
        if (cluster) cluster->stop();
        io.stop();
    });
    log("serving " + config.socket + ", state in " + config.stateDir + ", task records in " + config.runtimeDir +
        "/tasks (" + features.describe() + ")");
    notifyReady("serving " + config.socket);
    // A handler that throws is a bug; log it and keep serving the node
    // rather than abandon every running task's flush.
    for (;;) {
        try {
            io.run();
            return 0;
        } catch (const std::exception& e) {
            log(std::string("internal error: ") + e.what(), {.level = LogLevel::err});
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"secretshimd: the secretshim node agent"};
    app.set_version_flag("--version", std::string("secretshimd ") + versionString());
    Flags flags;
    app.add_option("--config", flags.configPath, "YAML configuration file");
    app.add_option("--socket", flags.socket, "unix socket to serve (overrides the config)");
    app.add_option("--state-dir", flags.stateDir, "state directory (overrides the config)");
    app.add_option("--runtime-dir", flags.runtimeDir,
                   "runtime directory for the records of running tasks, a tmpfs (overrides the config; "
                   "default: the socket's directory)");
    CLI11_PARSE(app, argc, argv);
    // What systemd's fd store handed back (the views of running containers,
    // kept across a crash of the agent), taken before anything else opens
    // an fd or forks: owned from here on, closed on every way out.
    auto stored = takeStoredFds();
    hardenProcess();

    if (::geteuid() != 0) {
        return failed("must run as root (it mounts and enters mount namespaces)");
    }
    auto config = loadConfig(flags);
    if (!config) return failed(config.error().message);
    setLogLevel(config->logLevel);
    if (auto ok = setLogTarget(config->logTarget); !ok) return failed(ok.error().message);
    const auto& features = platform::kernelFeatures();
    if (auto ok = checkKernel(features, *config); !ok) return failed(ok.error().message);
    auto records = TaskRecords::open(config->runtimeDir);
    if (!records) return failed(records.error().message);

    boost::asio::io_context io;
    auto sources = openSource(io, *config);
    if (!sources) return failed(sources.error().message);
    auto fdStore = serviceFdStore();
    Agent agent(io, *config, std::move(*records), sources->local.get(), fdStore.get());
    agent.adoptTasks(std::move(stored));
    if (sources->cluster) agent.setClusterSource(sources->cluster.get());  // starts its watch thread
    // Before the socket: an address it cannot bind stops the agent before
    // any hook reaches it.
    auto metrics = openMetrics(io, agent, *config);
    if (!metrics) return failed(metrics.error().message);
    std::unique_ptr<MetricsTextfile> textfile;
    if (!config->metricsTextfile.empty()) {
        auto opened = MetricsTextfile::open(io, config->metricsTextfile, [&agent] { return agent.metricsText(); });
        if (!opened) return failed(opened.error().message);
        textfile = std::move(*opened);
    }
    if (auto ok = agent.listen(); !ok) return failed(ok.error().message);
    return serve(io, agent, sources->cluster.get(), *config, flags, features);
}
