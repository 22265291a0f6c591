// secretshim-hook.exe: what the orchestrator of a Windows node calls at a
// task's start and stop (Windows has no OCI hooks):
//   secretshim-hook.exe prepare --root ROOT --task ID --secret SPEC [--secret SPEC]... [--secrets "A;B"]
//   secretshim-hook.exe cleanup --root ROOT --task ID
// (the protocol's create and release). It only names the task to the agent: the agent reads the store and
// writes the container's files, so no plaintext ever passes through here.
// Exit 0 on success; 1 with one line on stderr naming the task and the
// reason; 2 for a usage error.
#include <cstdio>

#include "plugin/protocol/messages.hpp"
#include "plugin/windows/command_lines.hpp"
#include "plugin/windows/pipe_channel.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/windows/utf8_args.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

int failLine(const std::string& stage, const std::string& task, const std::string& message) {
    std::fprintf(stderr, "secretshim-hook: %s: task %s: %s\n", stage.c_str(), quote(task).c_str(), message.c_str());
    return 1;
}

}  // namespace

int main() {
    Utf8Args args;
    HookArgs parsed;
    if (const int code = parseHookArgs(args.argc(), args.argv(), parsed); code >= 0) return code;
    const std::string& task = parsed.task;
    const bool preparing = parsed.prepare;
    const std::string stage = preparing ? "prepare" : "cleanup";

    CreateRequest create;
    create.id = task;
    create.root = parsed.root;
    if (preparing) {
        std::string all = parsed.joined;
        for (const std::string& spec : parsed.specs) {
            // ';' separates specs: one inside a --secret would make two.
            if (spec.find(';') != std::string::npos)
                return failLine(stage, task, "--secret " + quote(spec) + " contains ';' (use --secrets for a list)");
            all += (all.empty() ? "" : ";") + spec;
        }
        // A task that asks for no secrets costs no call to the agent.
        if (all.find_first_not_of("; \t") == std::string::npos) return 0;
        create.secrets = all;
    }
    const nlohmann::json request = preparing ? create.toJson() : ReleaseRequest{task, "", parsed.root}.toJson();
    auto path = pipePath(parsed.pipe);
    if (!path) return failLine(stage, task, path.error().message);
    const Millis timeout{static_cast<long long>(parsed.timeoutSeconds) * 1000};
    auto connection = PipeConnection::connect(*path, timeout);
    if (!connection) return failLine(stage, task, connection.error().message);
    if (auto sent = connection->send(request, timeout); !sent) return failLine(stage, task, sent.error().message);
    auto reply = connection->receive(timeout);
    if (!reply) return failLine(stage, task, "no answer from the agent: " + reply.error().message);
    if (auto ok = checkOk(*reply, "the agent refused without a reason"); !ok) {
        // The agent's errors already name the task.
        std::fprintf(stderr, "secretshim-hook: %s: %s\n", stage.c_str(), ok.error().message.c_str());
        return 1;
    }
    return 0;
}
