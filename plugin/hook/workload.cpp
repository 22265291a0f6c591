#include "plugin/hook/workload.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "platform/linux/read_all.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxSpec = 16 << 20;
constexpr std::size_t kMaxProcFile = 64 << 10;
// How far above the hook the conmon that started the runtime may be: the
// runtime (runc, crun), and a wrapper script or two in between.
constexpr int kMaxAncestors = 6;

// containerd's CRI plugin sets these on every container's and sandbox's
// spec, over any pod annotation of the same name (checked by
// tests/integration/cri_e2e.sh).
constexpr const char* kCriType = "io.kubernetes.cri.container-type";
constexpr const char* kCriSandboxId = "io.kubernetes.cri.sandbox-id";
constexpr const char* kCriNamespace = "io.kubernetes.cri.sandbox-namespace";
constexpr const char* kCriPod = "io.kubernetes.cri.sandbox-name";
constexpr const char* kCriPodUid = "io.kubernetes.cri.sandbox-uid";
constexpr const char* kCriContainer = "io.kubernetes.cri.container-name";
constexpr const char* kCriImage = "io.kubernetes.cri.image-name";
// On a CRI-O workload container's spec: CRI-O sets the type and the sandbox
// name over any pod annotation; the pod and container names are the
// container labels kubelet sends, applied last, over pod annotations too
// (internal/factory/container/container.go, SpecAddAnnotations).
constexpr const char* kCrioType = "io.kubernetes.cri-o.ContainerType";
constexpr const char* kCrioSandboxName = "io.kubernetes.cri-o.SandboxName";
constexpr const char* kCrioNamespace = "io.kubernetes.pod.namespace";
constexpr const char* kCrioPod = "io.kubernetes.pod.name";
constexpr const char* kCrioPodUid = "io.kubernetes.pod.uid";
constexpr const char* kCrioContainer = "io.kubernetes.container.name";
constexpr const char* kCrioImage = "io.kubernetes.cri-o.ImageName";

const std::string* annotation(const std::map<std::string, std::string>& annotations, const std::string& key) {
    const auto it = annotations.find(key);
    return it == annotations.end() ? nullptr : &it->second;
}

Result<std::string> set(const std::map<std::string, std::string>& annotations, const char* key, Integration by) {
    const std::string* v = annotation(annotations, key);
    if (!v || v->empty())
        return fail("the annotation " + std::string(key) + ", which " + std::string(integrationName(by)) +
                    " sets, is missing");
    return *v;
}

bool isHex(std::string_view s) {
    if (s.empty() || s.size() > 128) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

Result<std::string> readFile(const std::string& path, std::size_t limit, const std::string& what) {
    platform::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return failErrno("opening " + what);
    return platform::readAll(fd.get(), limit, what);
}

// Whether the init sits in the cgroup its runtime makes for this container:
// one whose name is PREFIX-<id> (cgroupfs) or PREFIX-<id>.scope (systemd),
// maybe with a child of its own (crun under systemd puts the init one level
// below). The path is the runtime's (linux.cgroupsPath), never the image's.
bool inContainerCgroup(std::string_view cgroupFile, const std::string& unit) {
    const std::string scope = unit + ".scope";
    std::size_t start = 0;
    while (start < cgroupFile.size()) {
        std::size_t end = cgroupFile.find('\n', start);
        if (end == std::string_view::npos) end = cgroupFile.size();
        const std::string_view line = cgroupFile.substr(start, end - start);
        start = end + 1;
        const auto colon = line.find(':', line.find(':') + 1);  // hierarchy-id:controllers:path
        if (colon == std::string_view::npos) continue;
        const std::string_view path = line.substr(colon + 1);
        for (std::size_t p = 0; p < path.size();) {
            std::size_t q = path.find('/', p);
            if (q == std::string_view::npos) q = path.size();
            const std::string_view part = path.substr(p, q - p);
            if (part == unit || part == scope) return true;
            p = q + 1;
        }
    }
    return false;
}

std::string conmonOption(const std::vector<std::string>& args, std::string_view shortName, std::string_view longName) {
    // The first occurrence: Podman puts -c and -n before the exit command's
    // arguments, which repeat other options' names as values.
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if ((a == shortName || a == longName) && i + 1 < args.size()) return args[i + 1];
        if (a.size() > longName.size() + 1 && a.compare(0, longName.size(), longName) == 0 && a[longName.size()] == '=')
            return a.substr(longName.size() + 1);
    }
    return {};
}

// The conmon above the hook: the runtime that runs the hook is its child
// (Podman's conmon runs `runc create`), a wrapper script or two between.
Result<std::vector<std::string>> conmonAbove(pid_t from) {
    pid_t pid = from;
    for (int depth = 0; depth < kMaxAncestors && pid > 1; ++depth) {
        const std::string proc = "/proc/" + std::to_string(pid);
        auto stat = readFile(proc + "/stat", kMaxProcFile, proc + "/stat");
        if (!stat) return propagate(stat);
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        const auto open = stat->find('('), close = stat->rfind(')');
        if (open == std::string::npos || close == std::string::npos || close < open)
            return fail("cannot parse " + proc + "/stat");
        const std::string comm = stat->substr(open + 1, close - open - 1);
        if (comm == "conmon") {
            auto cmdline = readFile(proc + "/cmdline", kMaxProcFile, proc + "/cmdline");
            if (!cmdline) return propagate(cmdline);
            std::vector<std::string> args;
            for (std::size_t s = 0; s < cmdline->size();) {
                const std::size_t e = cmdline->find('\0', s);
                args.push_back(cmdline->substr(s, e == std::string::npos ? std::string::npos : e - s));
                if (e == std::string::npos) break;
                s = e + 1;
            }
            return args;
        }
        pid = static_cast<pid_t>(std::strtol(stat->c_str() + close + 4, nullptr, 10));  // ") S ppid"
    }
    return fail("no conmon process above the hook: was this container started by Podman?");
}

Result<WorkloadIdentity> kubernetesIdentity(Integration by, const OciState& state,
                                            const std::array<const char*, 6>& keys) {
    // keys: type, namespace, pod, pod uid, container, image
    const auto& a = state.annotations;
    auto type = set(a, keys[0], by);
    if (!type) return propagate(type);
    if (*type != "container")
        return fail("the annotation " + std::string(keys[0]) + " says " + quote(*type) + ", not a workload container");
    WorkloadIdentity id;
    id.kind = WorkloadIdentity::Kind::kubernetes;
    id.integration = by;
    for (auto [key, out] : {std::pair{keys[1], &id.ns}, std::pair{keys[2], &id.pod}, std::pair{keys[3], &id.podUid},
                            std::pair{keys[4], &id.container}}) {
        auto v = set(a, key, by);
        if (!v) return propagate(v);
        if (!isIdentityName(*v)) return fail("the annotation " + std::string(key) + " is not a name: " + quote(*v));
        *out = std::move(*v);
    }
    if (const std::string* image = annotation(a, keys[5])) id.image = *image;
    return id;
}

// The pod identity a CRI container's spec carries comes from the
// CreateContainer request's copy of the sandbox config, which containerd
// does not check against the pod. The sandbox's own spec, written when the
// pod was created, must say the same.
Result<void> checkSandbox(const WorkloadIdentity& id, const OciState& state, std::string_view sandboxSpec) {
    const json spec = json::parse(sandboxSpec, nullptr, false);
    const auto ann = spec.is_object() ? spec.find("annotations") : spec.end();
    if (ann == spec.end() || !ann->is_object()) return fail("the pod sandbox's config.json has no annotations");
    const auto field = [&](const char* key) { return stringField(*ann, key); };
    const std::string sandboxId = state.annotations.at(kCriSandboxId);
    if (field(kCriType) != "sandbox" || field(kCriSandboxId) != sandboxId)
        return fail("the pod sandbox " + quote(sandboxId) + "'s config.json is not that sandbox's");
    // The sandbox's values are shown as they are only if they are names.
    const auto shown = [&](const char* key) {
        const std::string v = field(key);
        return isIdentityName(v) ? v : quote(v);
    };
    if (field(kCriNamespace) != id.ns || field(kCriPod) != id.pod || field(kCriPodUid) != id.podUid)
        return fail("the container names pod " + id.ns + "/" + id.pod + " (uid " + id.podUid + "), but its sandbox " +
                    "belongs to pod " + shown(kCriNamespace) + "/" + shown(kCriPod) + " (uid " + shown(kCriPodUid) + ")");
    return {};
}

bool looksLikeKubernetes(const OciState& state) {
    return state.annotations.count(kCriType) || state.annotations.count(kCrioType);
}

}  // namespace

bool hasSecretshimAnnotation(const OciState& state) {
    static const std::string prefix = "io.secretshim.";
    const auto it = state.annotations.lower_bound(prefix);
    return it != state.annotations.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

Result<SecretsRequest> requestOf(Integration integration, const OciState& state) {
    const std::string secretsKey(kSecretsAnnotation), taskKey(kTaskAnnotation);
    SecretsRequest request;
    if (kindOf(integration) != WorkloadIdentity::Kind::kubernetes) {
        if (const std::string* v = annotation(state.annotations, secretsKey)) request.secrets = *v;
        if (const std::string* v = annotation(state.annotations, taskKey)) request.task = *v;
        return request;
    }
    for (const std::string& key : {secretsKey, taskKey})
        if (state.annotations.count(key))
            return fail("the annotation " + key + " would reach every container of the pod, sidecars too: name the " +
                        "container (" + key + ".<container name>)");
    const char* nameKey = integration == Integration::crio ? kCrioContainer : kCriContainer;
    const std::string* name = annotation(state.annotations, nameKey);
    if (!name) return request;  // not a workload container: identify() refuses it if it asks
    if (const std::string* v = annotation(state.annotations, secretsKey + "." + *name)) request.secrets = *v;
    if (const std::string* v = annotation(state.annotations, taskKey + "." + *name)) request.task = *v;
    return request;
}

Result<WorkloadFacts> gatherFacts(Integration integration, const OciState& state) {
    WorkloadFacts facts;
    const std::string cgroupPath = "/proc/" + std::to_string(state.pid) + "/cgroup";
    switch (integration) {
        case Integration::containerdCri: {
            const std::string* sandbox = annotation(state.annotations, kCriSandboxId);
            if (!sandbox) break;  // identify() names what is missing
            if (!isHex(*sandbox)) return fail("the annotation " + std::string(kCriSandboxId) + " is not an id");
            // containerd's shim keeps every task's bundle in one directory
            // per namespace, named by its id: the sandbox's is a sibling.
            const auto slash = state.bundle.rfind('/');
            if (state.bundle.empty() || state.bundle.front() != '/' || slash == std::string::npos)
                return fail("the bundle path is not absolute");
            auto spec = readFile(state.bundle.substr(0, slash + 1) + *sandbox + "/config.json", kMaxSpec,
                                 "the pod sandbox's config.json");
            if (!spec) return propagate(spec);
            facts.sandboxSpec = std::move(*spec);
            break;
        }
        case Integration::podman: {
            auto args = conmonAbove(::getppid());
            if (!args) return propagate(args);
            facts.conmonArgs = std::move(*args);
            [[fallthrough]];
        }
        case Integration::crio: {
            auto cgroup = readFile(cgroupPath, kMaxProcFile, cgroupPath);
            if (!cgroup) return propagate(cgroup);
            facts.cgroup = std::move(*cgroup);
            break;
        }
        case Integration::bundle:
        case Integration::containerd:
        case Integration::nri: break;
    }
    return facts;
}

Result<WorkloadIdentity> identify(Integration integration, const OciState& state, const WorkloadFacts& facts) {
    WorkloadIdentity id;
    id.integration = integration;
    id.kind = kindOf(integration);
    switch (integration) {
        case Integration::bundle:
        case Integration::containerd:
            // Root wrote this bundle, or so the registration says. A spec
            // that Kubernetes made means the hook was registered for the
            // wrong integration: its pod author must not pass for root.
            if (looksLikeKubernetes(state))
                return fail("a Kubernetes container, but the hook is registered with --integration " +
                            std::string(integrationName(integration)) +
                            " (containers started by root): register it for containerd-cri or cri-o");
            return id;
        case Integration::podman: {
            if (!inContainerCgroup(facts.cgroup, "libpod-" + state.id))
                return fail("the container's init is not in Podman's cgroup for it (libpod-<id>): "
                            "Podman with --cgroups=disabled is not supported");
            if (conmonOption(facts.conmonArgs, "-c", "--cid") != state.id)
                return fail("the conmon above the hook is not this container's");
            id.name = conmonOption(facts.conmonArgs, "-n", "--name");
            if (id.name.empty()) return fail("the conmon above the hook names no container");
            return id;
        }
        case Integration::containerdCri: {
            auto kube = kubernetesIdentity(integration, state,
                                           {kCriType, kCriNamespace, kCriPod, kCriPodUid, kCriContainer, kCriImage});
            if (!kube) return kube;
            if (auto sandbox = set(state.annotations, kCriSandboxId, integration); !sandbox)
                return propagate(sandbox);
            if (auto ok = checkSandbox(*kube, state, facts.sandboxSpec); !ok) return propagate(ok);
            return kube;
        }
        case Integration::nri:
            // The hook of an NRI container sends no identity: the agent has it from the runtime.
            return fail("an NRI container is identified by the runtime, not by the hook");
        case Integration::crio: {
            auto kube = kubernetesIdentity(integration, state,
                                           {kCrioType, kCrioNamespace, kCrioPod, kCrioPodUid, kCrioContainer, kCrioImage});
            if (!kube) return kube;
            if (!inContainerCgroup(facts.cgroup, "crio-" + state.id))
                return fail("the container's init is not in CRI-O's cgroup for it (crio-<id>)");
            // CRI-O names a pod's sandbox k8s_<pod>_<namespace>_<uid>_<attempt>
            // when the pod is created: the labels must name that pod.
            const std::string prefix = "k8s_" + kube->pod + "_" + kube->ns + "_" + kube->podUid + "_";
            auto sandbox = set(state.annotations, kCrioSandboxName, integration);
            if (!sandbox) return propagate(sandbox);
            if (sandbox->compare(0, prefix.size(), prefix) != 0 || sandbox->size() == prefix.size() ||
                sandbox->find_first_not_of("0123456789", prefix.size()) != std::string::npos)
                return fail("the container names pod " + kube->ns + "/" + kube->pod + ", but its sandbox is " +
                            quote(*sandbox));
            return kube;
        }
    }
    return fail("unknown integration");
}

}  // namespace secretshim::plugin
