#include "plugin/nri/relay.hpp"

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "mountfs/base/log.hpp"
#include "plugin/identity/workload_identity.hpp"
#include "plugin/protocol/channel.hpp"

namespace secretshim::plugin::nri {

namespace api = nriapi;

namespace {

// Less of the call's time than this left: not worth asking the agent.
constexpr std::chrono::milliseconds kLeastTime{50};
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

bool sameHook(const api::Hook& a, const api::Hook& b) {
    return a.path() == b.path() && std::equal(a.args().begin(), a.args().end(), b.args().begin(), b.args().end());
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

Result<api::ContainerAdjustment> Relay::createContainer(const api::CreateContainerRequest& request,
                                                        Clock::time_point deadline) {
    auto announced = announcement(request);
    if (announced && !*announced) return api::ContainerAdjustment();  // asks for nothing
    api::ContainerAdjustment adjust = adjustment(hook_, socket_);
    const auto& present = request.container().hooks().create_runtime();
    if (std::any_of(present.begin(), present.end(),
                    [&](const api::Hook& h) { return sameHook(h, adjust.hooks().create_runtime(0)); }))
        return api::ContainerAdjustment();  // our other instance was asked first
    const std::string who = "container " + quote(request.container().id()) + " (pod " +
                            request.pod().namespace_() + "/" + request.pod().name() + ")";
    auto ok = announced ? ask((*announced)->toJson(), deadline) : propagate(announced);
    if (!ok) {
        log(who + ": refused: " + ok.error().message);
        return propagate(ok);
    }
    return adjust;
}

// The agent flushes on the container's exit anyway: this is sooner.
void Relay::forget(const std::string& id, Clock::time_point deadline) {
    if (peerAlive_ && peerAlive_()) return;
    (void)ask(NriStopRequest{id}.toJson(), deadline);
}

void Relay::stopContainer(const api::StopContainerRequest& request, Clock::time_point deadline) {
    forget(request.container().id(), deadline);
}

void Relay::stateChange(const api::StateChangeEvent& event, Clock::time_point deadline) {
    // A container removed without a stop (refused by another plugin, or
    // never started) is forgotten too.
    if (event.event() == api::REMOVE_CONTAINER) forget(event.container().id(), deadline);
}

Result<void> Relay::ask(const nlohmann::json& request, Clock::time_point deadline) {
    const auto left = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()); };
    if (left() < kLeastTime)
        return fail("too little of the runtime's time for this call is left to ask the secretshim agent");
    auto sock = connectAgent(socket_, left());
    if (!sock) return propagate(sock);
    if (auto sent = sendJson(sock->get(), request); !sent) return propagate(sent, "the secretshim agent");
    // The reply within what is left of the call's time.
    if (auto ok = setSocketTimeout(sock->get(), left()); !ok) return propagate(ok);
    auto reply = receiveJson(sock->get());
    if (!reply) return reply.error().code == EAGAIN ? propagate(reply) : propagate(reply, "the secretshim agent");
    if (auto ok = checkOk(reply->body); !ok) return propagate(ok);
    return {};
}

}  // namespace secretshim::plugin::nri
