// secretshimd: the per-node agent. Runs in the foreground, logs one line
// per event to stderr (secret names, never values), exits on SIGTERM.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>

#include "platform/linux/features.hpp"
#include "plugin/agent/agent.hpp"
#include "plugin/agent/cluster_source.hpp"
#include "plugin/agent/local_source.hpp"
#include "plugin/agent/service_notify.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

int main(int argc, char** argv) {
    CLI::App app{"secretshimd: the secretshim node agent"};
    std::string configPath, socket, stateDir, runtimeDir;
    app.add_option("--config", configPath, "YAML configuration file");
    app.add_option("--socket", socket, "unix socket to serve (overrides the config)");
    app.add_option("--state-dir", stateDir, "state directory (overrides the config)");
    app.add_option("--runtime-dir", runtimeDir,
                   "runtime directory for the records of running tasks, a tmpfs (overrides the config; "
                   "default: the socket's directory)");
    CLI11_PARSE(app, argc, argv);
    // What systemd's fd store handed back (the views of running containers,
    // kept across a crash of the agent), taken before anything else opens
    // an fd or forks: owned from here on, closed on every way out.
    auto stored = takeStoredFds();

    // Plaintext passes through this process: no core dumps, no ptrace by
    // non-root, no swap-out of the pages we lock.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const rlimit noCore{0, 0};
    ::setrlimit(RLIMIT_CORE, &noCore);

    if (::geteuid() != 0) {
        std::fputs("secretshimd: must run as root (it mounts and enters mount namespaces)\n", stderr);
        return 1;
    }
    auto config = configPath.empty() ? Result<AgentConfig>(AgentConfig{}) : loadAgentConfig(configPath);
    if (!config) {
        std::fprintf(stderr, "secretshimd: %s\n", config.error().message.c_str());
        return 1;
    }
    if (!socket.empty()) config->socket = socket;
    if (!stateDir.empty()) config->stateDir = stateDir;
    if (!runtimeDir.empty()) config->runtimeDir = runtimeDir;
    if (config->runtimeDir.empty()) {
        const auto slash = config->socket.rfind('/');
        config->runtimeDir = slash == std::string::npos ? "." : slash == 0 ? "/" : config->socket.substr(0, slash);
    }

    const auto& features = platform::kernelFeatures();
    if (!features.sufficient()) {
        std::fprintf(stderr, "secretshimd: the kernel lacks what secrets views need (%s)\n",
                     features.describe().c_str());
        return 1;
    }
    if (auto ok = checkSwapPolicy(features.tmpfsNoswap, *config); !ok) {
        std::fprintf(stderr, "secretshimd: %s\n", ok.error().message.c_str());
        return 1;
    }
    if (!features.tmpfsNoswap)
        std::fputs("secretshimd: allow_swap: true: secrets views may be swapped out (the kernel has no tmpfs noswap)\n",
                   stderr);
    auto records = TaskRecords::open(config->runtimeDir);
    if (!records) {
        std::fprintf(stderr, "secretshimd: %s\n", records.error().message.c_str());
        return 1;
    }

    // One source of secrets: the embedded store with its grants, or etcd
    // (whose watch starts once the running containers are re-adopted).
    boost::asio::io_context io;
    std::unique_ptr<LocalSource> local;
    std::unique_ptr<ClusterSource> cluster;
    if (config->source == "etcd") {
        auto source = ClusterSource::create(io, *config);
        if (!source) {
            std::fprintf(stderr, "secretshimd: %s\n", source.error().message.c_str());
            return 1;
        }
        cluster = std::move(*source);
    } else {
        StoreOptions storeOptions;
        storeOptions.maxPayload = config->maxPayload;
        std::vector<std::string> problems;
        auto source = LocalSource::open(config->stateDir, storeOptions, problems);
        if (!source) {
            std::fprintf(stderr, "secretshimd: %s\n", source.error().message.c_str());
            return 1;
        }
        for (const auto& p : problems) std::fprintf(stderr, "secretshimd: %s\n", p.c_str());
        local = std::move(*source);
    }
    auto fdStore = serviceFdStore();
    Agent agent(io, *config, std::move(*records), local.get(), fdStore.get());
    agent.adoptTasks(std::move(stored));
    if (cluster) agent.setClusterSource(cluster.get());  // starts its watch thread
    if (auto ok = agent.listen(); !ok) {
        std::fprintf(stderr, "secretshimd: %s\n", ok.error().message.c_str());
        return 1;
    }
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) {
        std::fputs("secretshimd: stopping\n", stderr);
        notifyStopping();
        agent.stop();
        if (cluster) cluster->stop();
        io.stop();
    });
    std::fprintf(stderr, "secretshimd: serving %s, state in %s, task records in %s/tasks (%s)\n",
                 config->socket.c_str(), config->stateDir.c_str(), config->runtimeDir.c_str(),
                 features.describe().c_str());
    notifyReady("serving " + config->socket);
    // A handler that throws is a bug; log it and keep serving the node
    // rather than abandon every running task's flush.
    for (;;) {
        try {
            io.run();
            return 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "secretshimd: internal error: %s\n", e.what());
        }
    }
}
