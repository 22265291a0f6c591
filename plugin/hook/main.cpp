// secretshim-hook: the OCI hook. At createRuntime (or prestart) it asks the
// agent for the container's secrets view and attaches it inside the
// container; at poststop it tells the agent to flush at once. It stays
// single-threaded (setns into a mount namespace needs that) and never
// forks a child that keeps its stdio: runc waits for those pipes to close.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "platform/linux/attach.hpp"
#include "platform/linux/confine.hpp"
#include "platform/linux/mount_api.hpp"
#include "plugin/hook/oci_state.hpp"
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

int usage() {
    std::fputs("usage: secretshim-hook [--socket PATH] createRuntime|prestart|poststop\n", stderr);
    return 2;
}

Result<std::string> readAll(std::istream& in, std::size_t limit, const char* what) {
    std::string data;
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        data.append(buf, static_cast<std::size_t>(in.gcount()));
        if (data.size() > limit) return fail(std::string(what) + " is too large");
    }
    return data;
}

Result<void> checkReply(const JsonMessage& reply) {
    if (boolField(reply.body, "ok")) return {};
    const std::string error = stringField(reply.body, "error");
    return fail(error.empty() ? "the agent refused without a reason" : error);
}

Result<void> create(const std::string& socket, const OciState& state, const std::string& secrets,
                    const std::string& task) {
    if (state.pid <= 0) return fail("the OCI state has no pid (is the hook registered at createRuntime?)");
    platform::UniqueFd pidfd(platform::sysPidfdOpen(state.pid, 0));
    if (!pidfd) return failErrno("opening the container's init process");
    std::ifstream configFile(state.bundle + "/config.json", std::ios::binary);
    if (!configFile) return fail("cannot read " + state.bundle + "/config.json");
    auto config = readAll(configFile, 16 * kMaxState, "config.json");
    if (!config) return tl::unexpected(config.error());
    auto rootfs = parseRootfsPath(*config, state.bundle);
    if (!rootfs) return tl::unexpected(rootfs.error());

    auto sock = connectAgent(socket, kTimeout);
    if (!sock) return tl::unexpected(sock.error());
    const int fds[] = {pidfd.get()};
    if (auto ok = sendJson(sock->get(), {{"op", "create"}, {"id", state.id}, {"secrets", secrets}, {"task", task}}, fds); !ok)
        return ok;
    auto reply = receiveJson(sock->get());
    if (!reply) return tl::unexpected(reply.error());
    if (auto ok = checkReply(*reply); !ok) return ok;

    const auto mounts = reply->body.find("mounts");
    if (mounts == reply->body.end() || !mounts->is_array() || mounts->size() != reply->fds.size())
        return fail("malformed reply from the agent");
    std::vector<platform::MountSource> sources;
    for (std::size_t i = 0; i < mounts->size(); ++i) {
        const json& m = (*mounts)[i];
        if (!m.is_object() || !m.contains("target") || !m["target"].is_string())
            return fail("malformed reply from the agent");
        sources.push_back({m["target"].get<std::string>(), reply->fds[i].get(), boolField(m, "directory")});
    }
    // Once inside the container's mount namespace, before it touches the
    // image's files, the hook confines itself.
    auto attached = platform::attachMounts(pidfd.get(), *rootfs, sources, &platform::confineForAttach);
    json report = {{"op", "attached"}, {"ok", attached.has_value()}};
    if (!attached) report["error"] = attached.error().message;
    if (auto ok = sendJson(sock->get(), report); !ok) return attached ? ok : attached;
    if (!attached) return attached;
    auto ack = receiveJson(sock->get());
    if (!ack) return tl::unexpected(ack.error());
    return checkReply(*ack);
}

Result<void> release(const std::string& socket, const OciState& state) {
    auto sock = connectAgent(socket, kTimeout);
    if (!sock) return tl::unexpected(sock.error());
    if (auto ok = sendJson(sock->get(), {{"op", "release"}, {"id", state.id}}); !ok) return ok;
    auto reply = receiveJson(sock->get());
    if (!reply) return tl::unexpected(reply.error());
    return checkReply(*reply);
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket(kDefaultSocket);
    std::string stage;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--socket" && i + 1 < argc)
            socket = argv[++i];
        else if (arg.rfind("--socket=", 0) == 0)
            socket = arg.substr(9);
        else if (stage.empty() && arg[0] != '-')
            stage = arg;
        else
            return usage();
    }
    if (stage != "createRuntime" && stage != "prestart" && stage != "poststop") return usage();

    auto input = readAll(std::cin, kMaxState, "the OCI state");
    auto state = input ? parseOciState(*input) : tl::unexpected(input.error());
    if (!state) {
        std::fprintf(stderr, "secretshim-hook: %s\n", state.error().message.c_str());
        return 1;
    }
    // The fast path: a container that asks for no secrets costs one lookup.
    const auto secrets = state->annotations.find(std::string(kSecretsAnnotation));
    const auto task = state->annotations.find(std::string(kTaskAnnotation));
    if (secrets == state->annotations.end() && task == state->annotations.end()) return 0;

    const auto value = [&](auto it) { return it == state->annotations.end() ? std::string() : it->second; };
    auto result = stage == "poststop" ? release(socket, *state) : create(socket, *state, value(secrets), value(task));
    if (!result) {
        std::fprintf(stderr, "secretshim-hook: container %s: %s\n", state->id.c_str(),
                     result.error().message.c_str());
        // poststop only hurries the flush; the agent flushes on exit anyway.
        return stage == "poststop" ? 0 : 1;
    }
    return 0;
}
