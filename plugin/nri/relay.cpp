#include "plugin/nri/relay.hpp"

#include <string_view>

#include "mountfs/base/log.hpp"
#include "plugin/identity/workload_identity.hpp"
#include "plugin/protocol/channel.hpp"

namespace secretshim::plugin::nri {

namespace api = nriapi;

namespace {

// containerd waits 2 s for each call (plugin_request_timeout) and then
// drops the plugin and creates the container without it: the agent gets
// less, so that a slow agent is a refusal, never a container without its
// hook.
constexpr std::chrono::milliseconds kAgentTimeout{1500};
constexpr int kHookTimeout = 10;  // seconds, as the packaged hooks

void log(std::string_view line) { logLine("secretshim-nri", line); }

const std::string* find(const google::protobuf::Map<std::string, std::string>& map, const std::string& key) {
    const auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
}

void addHook(google::protobuf::RepeatedPtrField<api::Hook>* hooks, const std::string& path,
             const std::string& socket, const char* stage) {
    api::Hook* hook = hooks->Add();
    hook->set_path(path);
    for (const std::string& arg : {path, std::string("--socket"), socket, std::string("--integration"),
                                   std::string("nri"), std::string(stage)})
        hook->add_args(arg);
    hook->mutable_timeout()->set_value(kHookTimeout);
}

}  // namespace

Result<std::optional<NriCreateRequest>> announcement(const api::CreateContainerRequest& request) {
    const auto& annotations = request.pod().annotations();
    const std::string secretsKey(kSecretsAnnotation), taskKey(kTaskAnnotation);
    for (const std::string& key : {secretsKey, taskKey})
        if (annotations.count(key))
            return fail("the annotation " + key + " would reach every container of the pod, sidecars too: name the " +
                        "container (" + key + ".<container name>)");
    const std::string& name = request.container().name();
    const std::string* secrets = find(annotations, secretsKey + "." + name);
    const std::string* task = find(annotations, taskKey + "." + name);
    if (!secrets && !task) return std::nullopt;
    WorkloadIdentity identity;
    identity.kind = WorkloadIdentity::Kind::kubernetes;
    identity.integration = Integration::nri;
    identity.ns = request.pod().namespace_();
    identity.pod = request.pod().name();
    identity.podUid = request.pod().uid();
    identity.container = name;
    NriCreateRequest out;
    out.id = request.container().id();
    out.secrets = secrets ? *secrets : std::string();
    out.task = task ? *task : std::string();
    out.identity = identity.toJson();
    return out;
}

api::ContainerAdjustment adjustment(const std::string& hook, const std::string& agentSocket) {
    api::ContainerAdjustment adjust;
    (*adjust.mutable_annotations())[std::string(kNriAnnotation)] = "1";
    addHook(adjust.mutable_hooks()->mutable_create_runtime(), hook, agentSocket, "createRuntime");
    addHook(adjust.mutable_hooks()->mutable_poststop(), hook, agentSocket, "poststop");
    return adjust;
}

std::int32_t Relay::events() const {
    return eventBit(api::CREATE_CONTAINER) | eventBit(api::STOP_CONTAINER) | eventBit(api::REMOVE_CONTAINER);
}

// The agent keeps running containers' secrets across a restart of the
// runtime (or of this plugin) by itself: nothing to take back here.
void Relay::synchronize(const api::SynchronizeRequest& request) {
    log("synchronized: " + std::to_string(request.pods_size()) + " pod(s), " +
        std::to_string(request.containers_size()) + " container(s)");
}

Result<api::ContainerAdjustment> Relay::createContainer(const api::CreateContainerRequest& request) {
    auto announced = announcement(request);
    if (announced && !*announced) return api::ContainerAdjustment();  // asks for nothing
    const std::string who = "container " + quote(request.container().id()) + " (pod " +
                            request.pod().namespace_() + "/" + request.pod().name() + ")";
    auto ok = announced ? ask((*announced)->toJson()) : propagate(announced);
    if (!ok) {
        log(who + ": refused: " + ok.error().message);
        return propagate(ok);
    }
    return adjustment(hook_, socket_);
}

void Relay::stopContainer(const api::StopContainerRequest& request) {
    // The agent flushes on the container's exit anyway: this is sooner.
    (void)ask(NriStopRequest{request.container().id()}.toJson());
}

void Relay::stateChange(const api::StateChangeEvent& event) {
    // A container removed without a stop (refused by another plugin, or
    // never started) is forgotten too.
    if (event.event() == api::REMOVE_CONTAINER) (void)ask(NriStopRequest{event.container().id()}.toJson());
}

Result<void> Relay::ask(const nlohmann::json& request) {
    auto sock = connectAgent(socket_, kAgentTimeout);
    if (!sock) return propagate(sock);
    if (auto sent = sendJson(sock->get(), request); !sent) return propagate(sent, "the secretshim agent");
    auto reply = receiveJson(sock->get());
    if (!reply) return propagate(reply, "the secretshim agent");
    if (auto ok = checkOk(reply->body); !ok) return propagate(ok);
    return {};
}

}  // namespace secretshim::plugin::nri
