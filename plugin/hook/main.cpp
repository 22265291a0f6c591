// secretshim-hook: the OCI hook. At createRuntime (or prestart) it asks the
// agent for the container's secrets view and attaches it inside the
// container; at poststop it tells the agent to flush at once. It stays
// single-threaded (setns into a mount namespace needs that) and never
// forks a child that keeps its stdio: runc waits for those pipes to close.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mountfs/base/version.hpp"
#include "platform/linux/attach.hpp"
#include "platform/linux/confine.hpp"
#include "platform/linux/id_map.hpp"
#include "platform/linux/userns_lock.hpp"
#include "platform/linux/mount_api.hpp"
#include "platform/linux/read_all.hpp"
#include "plugin/hook/oci_state.hpp"
#include "plugin/hook/workload.hpp"
#include "plugin/protocol/channel.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;

#if defined(__SANITIZE_ADDRESS__)
// LeakSanitizer's exit-time check needs clone and ptrace, which the seccomp
// allow-list (platform/linux/confine.cpp) refuses.
extern "C" int __lsan_is_turned_off() { return 1; }
#endif

namespace {

constexpr std::size_t kMaxState = 1 << 20;
constexpr auto kTimeout = std::chrono::seconds(10);
constexpr auto kBusyRetry = std::chrono::seconds(5);

// On stderr with exit 2 after a usage error; on stdout with exit 0 for
// --help.
int usage(std::FILE* out = stderr) {
    std::fputs("usage: secretshim-hook [--socket PATH] [--integration bundle|containerd|containerd-cri|podman|cri-o|nri] "
               "createRuntime|prestart|poststop|auto\n"
               "       secretshim-hook --help | --version\n",
               out);
    return out == stderr ? 2 : 0;
}

Result<void> checkReply(const JsonMessage& reply) {
    auto ok = checkOk(reply.body, "the agent refused without a reason");
    if (!ok) return propagate(ok);
    return {};
}

// A create request and the agent's reply. A send refused because the
// agent already closed (EPIPE) reads the reply it left, if any.
Result<JsonMessage> sendCreate(int sock, const json& request, int pidfd) {
    const int fds[] = {pidfd};
    if (auto sent = sendJson(sock, request, fds); !sent) {
        if (sent.error().code != EPIPE && sent.error().code != ECONNRESET) return propagate(sent);
        auto left = receiveJson(sock);
        if (left) return left;
        return propagate(sent);
    }
    return receiveJson(sock);
}

bool isBusy(const Result<JsonMessage>& reply) {
    if (!reply) return reply.error().code == EPIPE || reply.error().code == ECONNRESET;
    return boolField(reply->body, "busy");
}

// In a user namespace, the mount points the hook creates belong to the
// container's root: a tmpfs the container mounted (its /run) refuses an
// owner its namespace cannot name (EOVERFLOW), and the container's root
// should own what appears in its tree. Capabilities are unaffected: the
// confinement gives DAC_OVERRIDE back after setfsuid() cleared it.
Result<void> actAsContainerRoot(pid_t pid) {
    auto root = platform::containerRootIds(pid);
    if (!root) return propagate(root);
    if (root->uid == 0 && root->gid == 0) return {};
    return platform::actAs(*root);
}

// A container in its own user namespace gets mounts whose flags it cannot
// change (platform/linux/userns_lock.hpp); `sources` then name the locked
// clones, which `locked` keeps open. Once in that user namespace the hook
// can no longer setns() on the pidfd (that needs ptrace rights over the
// init, whose memory belongs to the host's namespace): `mntns` is the
// container's mount namespace, opened before, for attachMounts().
Result<void> lockFlagsIfUserNamespace(int pidfd, pid_t pid, std::vector<platform::MountSource>& sources,
                                      std::vector<platform::UniqueFd>& locked, platform::UniqueFd& mntns) {
    auto other = platform::inOtherUserNamespace(pid);
    if (!other) return propagate(other);
    if (!*other) return {};
    mntns.reset(::open(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
    if (!mntns) return failErrno("opening the container's mount namespace");
    // The pid still names the init the pidfd holds (not a reused pid).
    if (::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) != 0)
        return failErrno("checking the container's init");
    auto clones = platform::lockMountFlags(pidfd, sources);
    if (!clones) return propagate(clones);
    locked = std::move(*clones);
    for (std::size_t i = 0; i < sources.size(); ++i) sources[i].fd = locked[i].get();
    return {};
}

Result<void> create(const std::string& socket, const OciState& state, Integration integration,
                    const SecretsRequest& asked) {
    if (state.pid <= 0) return fail("the OCI state has no pid (is the hook registered at createRuntime?)");
    // The bundle tells this container from one with the same id in another
    // containerd namespace or runc root (plugin/agent/task_key.hpp).
    CreateRequest create;
    create.id = state.id;
    create.bundle = state.bundle;
    if (integration == Integration::nri) {
        // The runtime told the agent who this is and what it asks for.
        create.nri = true;
    } else {
        auto workload = gatherFacts(integration, state);
        auto identity = workload ? identify(integration, state, *workload) : propagate(workload);
        if (!identity) return fail("cannot tell who this container is: " + identity.error().message);
        create.secrets = asked.secrets.value_or("");
        create.task = asked.task.value_or("");
        create.identity = identity->toJson();
    }
    platform::UniqueFd pidfd(platform::sysPidfdOpen(state.pid, 0));
    if (!pidfd) return failErrno("opening the container's init process");
    platform::UniqueFd configFile(::open((state.bundle + "/config.json").c_str(), O_RDONLY | O_CLOEXEC));
    if (!configFile) return fail("cannot read " + state.bundle + "/config.json");
    auto config = platform::readAll(configFile.get(), 16 * kMaxState, "config.json");
    if (!config) return propagate(config);
    BundleFacts facts;
    auto rootfs = parseRootfsPath(*config, state.bundle, &facts);
    if (!rootfs) return propagate(rootfs);

    const json request = create.toJson();
    auto sock = connectAgent(socket, kTimeout);
    if (!sock) return propagate(sock);
    auto reply = sendCreate(sock->get(), request, pidfd.get());
    // The agent turns connections beyond its limit away at once (its reply
    // says "busy", or it closed before our request went out): retry.
    for (auto until = std::chrono::steady_clock::now() + kBusyRetry;
         isBusy(reply) && std::chrono::steady_clock::now() < until;) {
        ::usleep(50 * 1000);
        sock = connectAgent(socket, kTimeout);
        if (!sock) return propagate(sock);
        reply = sendCreate(sock->get(), request, pidfd.get());
    }
    if (!reply) return propagate(reply);
    if (auto ok = checkReply(*reply); !ok) return ok;

    auto created = CreateReply::fromJson(reply->body);
    if (!created || created->mounts.size() != reply->fds.size()) return fail("malformed reply from the agent");
    std::vector<platform::MountSource> sources;
    for (std::size_t i = 0; i < created->mounts.size(); ++i) {
        const MountInfo& m = created->mounts[i];
        if (m.target.empty()) return fail("malformed reply from the agent");
        sources.push_back({m.target, reply->fds[i].get(), m.directory});
    }
    std::vector<platform::UniqueFd> locked;
    platform::UniqueFd mntns;
    auto attached = actAsContainerRoot(state.pid);
    // Locking costs the re-adoption after an agent restart (a locked
    // read-only flag cannot be cleared on a clone either): only where the
    // container may hold CAP_SYS_ADMIN in its user namespace. Without it
    // nothing in the container can remount: a nested user namespace gets
    // a copy of the mount namespace, where the kernel locks our flags.
    if (attached && facts.mayHoldSysAdmin)
        attached = lockFlagsIfUserNamespace(pidfd.get(), state.pid, sources, locked, mntns);
    // Once inside the container's mount namespace, before it touches the
    // image's files, the hook confines itself.
    if (attached)
        attached = platform::attachMounts(mntns ? mntns.get() : pidfd.get(), *rootfs, sources,
                                          &platform::confineForAttach, facts.rootReadOnly);
    // Whether the mounts were locked: the agent attaches none live then.
    const AttachedRequest report{attached.has_value(), attached ? std::string() : attached.error().message,
                                 !locked.empty()};
    if (auto ok = sendJson(sock->get(), report.toJson()); !ok) return attached ? ok : attached;
    if (!attached) return attached;
    auto ack = receiveJson(sock->get());
    if (!ack) return propagate(ack);
    return checkReply(*ack);
}

// Tells the agent and returns: the runtime does not wait for the flush. The
// agent flushes on the container's exit by itself (this only makes it
// sooner where the pidfd has not fired yet), and its reply could change
// nothing here (a poststop failure never fails the runtime): waiting for it
// only put the wiping of every file on the runtime's path (1000 x 64 KiB:
// about 10 ms). The message stays queued for the agent after we close (an
// agent too busy to take it turns it away, and the exit does the flush).
// The bundle, as at createRuntime, names this very container: the same id
// may run in another containerd namespace, whose secrets must stay.
Result<void> release(const std::string& socket, const OciState& state) {
    auto sock = connectAgent(socket, kTimeout);
    if (!sock) return propagate(sock);
    return sendJson(sock->get(), ReleaseRequest{state.id, state.bundle, ""}.toJson());
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket(kDefaultSocket);
    std::string stage;
    // Who registered the hook, and so who started the container: a fact of
    // the registration (the bundle root wrote, the packaged hooks.d file,
    // the containerd base spec or wrapper), never of the annotations.
    std::optional<Integration> integration = Integration::bundle;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--socket" && i + 1 < argc)
            socket = argv[++i];
        else if (arg.rfind("--socket=", 0) == 0)
            socket = arg.substr(9);
        else if (arg == "--integration" && i + 1 < argc)
            integration = parseIntegration(argv[++i]);
        else if (arg.rfind("--integration=", 0) == 0)
            integration = parseIntegration(std::string_view(arg).substr(14));
        else if (arg == "--help" || arg == "-h")
            return usage(stdout);
        else if (arg == "--version")
            return std::printf("secretshim-hook %s\n", versionString()) > 0 ? 0 : 1;
        else if (stage.empty() && arg[0] != '-')
            stage = arg;
        else
            return usage();
    }
    if (!integration) return usage();
    if (stage != "createRuntime" && stage != "prestart" && stage != "poststop" && stage != "auto") return usage();

    auto input = platform::readAll(STDIN_FILENO, kMaxState, "the OCI state");
    auto state = input ? parseOciState(*input) : propagate(input);
    if (!state) {
        std::fprintf(stderr, "secretshim-hook: %s\n", state.error().message.c_str());
        return 1;
    }
    // The fast path: a container that asks for no secrets costs one lookup.
    if (!hasSecretshimAnnotation(*state) || isPodSandbox(*state)) return 0;
    // A hooks.d file (Podman, CRI-O) gives one argument list to all its
    // stages: "auto" tells them apart by the state's status.
    if (stage == "auto") stage = state->status == "stopped" ? "poststop" : "createRuntime";

    // secretshim-nri announced this container to the agent and marked it:
    // what it asks for is the agent's to know.
    auto asked = *integration == Integration::nri ? Result<SecretsRequest>(SecretsRequest{"", std::nullopt})
                                                  : requestOf(*integration, *state);
    // Nothing asked for this container (a sidecar the pod does not name).
    if (asked && asked->empty()) return 0;
    Result<void> result;
    if (stage == "poststop")
        result = release(socket, *state);
    else if (!asked)
        result = propagate(asked);
    else if (result = checkNoSplitReference(*state); result)
        result = create(socket, *state, *integration, *asked);
    if (!result) {
        std::fprintf(stderr, "secretshim-hook: container %s: %s\n", state->id.c_str(),
                     result.error().message.c_str());
        // poststop only hurries the flush; the agent flushes on exit anyway.
        return stage == "poststop" ? 0 : 1;
    }
    return 0;
}
