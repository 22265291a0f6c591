// The hook's identity decisions on recorded facts: what containerd's CRI,
// CRI-O and Podman put in a container's spec and around it (recorded here:
// tests/integration/cri/README.md; Podman's conmon command line as
// Podman 4.3 starts it), and what a pod author or an image can add.
#include <unistd.h>

#include <doctest/doctest.h>

#include "plugin/hook/workload.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

const std::string kId = "3f5a9c0d1e2b4a6978c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6";
const std::string kSandbox = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";

OciState criContainer() {
    OciState s;
    s.id = kId;
    s.pid = 4242;
    s.bundle = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/" + kId;
    s.annotations = {
        {"io.kubernetes.cri.container-type", "container"},
        {"io.kubernetes.cri.sandbox-id", kSandbox},
        {"io.kubernetes.cri.sandbox-namespace", "tenant-a"},
        {"io.kubernetes.cri.sandbox-name", "web"},
        {"io.kubernetes.cri.sandbox-uid", "uid-a1"},
        {"io.kubernetes.cri.container-name", "app"},
        {"io.kubernetes.cri.image-name", "localhost/busybox:latest"},
        {"io.secretshim.secrets.app", "db"},
    };
    return s;
}

std::string sandboxSpec(const std::string& ns, const std::string& pod, const std::string& uid,
                        const std::string& id = kSandbox, const std::string& type = "sandbox") {
    return R"({"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":")" + type +
           R"(","io.kubernetes.cri.sandbox-id":")" + id + R"(","io.kubernetes.cri.sandbox-namespace":")" + ns +
           R"(","io.kubernetes.cri.sandbox-name":")" + pod + R"(","io.kubernetes.cri.sandbox-uid":")" + uid + R"("}})";
}

std::string identifyError(Integration i, const OciState& s, const WorkloadFacts& f) {
    auto id = identify(i, s, f);
    return id ? std::string("identified as ") + id->describe() : id.error().message;
}

OciState podmanContainer() {
    OciState s;
    s.id = kId;
    s.pid = 4242;
    s.annotations = {{"io.secretshim.secrets", "db"}, {"io.container.manager", "libpod"}};
    return s;
}

WorkloadFacts podmanFacts(const std::string& name = "web-1", const std::string& cid = kId) {
    WorkloadFacts f;
    f.cgroup = "1:cpu:/libpod_parent/libpod-" + kId + "\n0::/libpod_parent/libpod-" + kId + "\n";
    f.conmonArgs = {"/usr/bin/conmon", "--api-version", "1", "-c", cid, "-u", cid, "-r", "/usr/bin/runc",
                    "-n", name, "--exit-dir", "/run/libpod/exits", "--exit-command", "/usr/bin/podman",
                    "--exit-command-arg", "-n", "--exit-command-arg", "spoof"};
    return f;
}

}  // namespace

TEST_CASE("the fast path: any io.secretshim.* annotation, and only those") {
    OciState s;
    CHECK_FALSE(hasSecretshimAnnotation(s));
    s.annotations = {{"io.secretshim", "x"}, {"io.secretshimx.secrets", "x"}, {"run.oci.x", "y"}};
    CHECK_FALSE(hasSecretshimAnnotation(s));
    s.annotations["io.secretshim.secrets.app"] = "db";
    CHECK(hasSecretshimAnnotation(s));
}

TEST_CASE("outside Kubernetes the plain keys are the request; suffixed ones are ignored") {
    OciState s;
    s.annotations = {{"io.secretshim.secrets", "db"}, {"io.secretshim.task", "t1"}, {"io.secretshim.secrets.x", "other"}};
    for (Integration i : {Integration::bundle, Integration::containerd, Integration::podman}) {
        auto r = requestOf(i, s);
        REQUIRE(r.has_value());
        CHECK(r->secrets == "db");
        CHECK(r->task == "t1");
    }
    s.annotations = {{"io.secretshim.secrets.x", "other"}};
    CHECK(requestOf(Integration::bundle, s)->empty());
    // An empty value asks (and the agent refuses it), unlike no key at all.
    s.annotations = {{"io.secretshim.secrets", ""}};
    auto blank = requestOf(Integration::bundle, s);
    CHECK_FALSE(blank->empty());
    CHECK(blank->secrets == "");
}

TEST_CASE("in a pod only the keys naming the container count; the plain keys are refused") {
    OciState s = criContainer();
    s.annotations["io.secretshim.secrets.sidecar"] = "other";
    s.annotations["io.secretshim.task.app"] = "t1";
    auto r = requestOf(Integration::containerdCri, s);
    REQUIRE(r.has_value());
    CHECK(r->secrets == "db");
    CHECK(r->task == "t1");
    // The sidecar: named by nothing, asks for nothing.
    s.annotations["io.kubernetes.cri.container-name"] = "istio-proxy";
    CHECK(requestOf(Integration::containerdCri, s)->empty());
    s.annotations["io.secretshim.secrets"] = "db";
    auto plain = requestOf(Integration::containerdCri, s);
    REQUIRE_FALSE(plain.has_value());
    CHECK(plain.error().message ==
          "the annotation io.secretshim.secrets would reach every container of the pod, sidecars too: name the "
          "container (io.secretshim.secrets.<container name>)");
    // CRI-O names the container by kubelet's label.
    OciState c;
    c.annotations = {{"io.kubernetes.container.name", "app"}, {"io.secretshim.secrets.app", "db"}};
    CHECK(requestOf(Integration::crio, c)->secrets == "db");
}

TEST_CASE("containerd CRI: the identity from containerd's keys, checked against the pod sandbox's own spec") {
    const OciState s = criContainer();
    WorkloadFacts f;
    f.sandboxSpec = sandboxSpec("tenant-a", "web", "uid-a1");
    auto id = identify(Integration::containerdCri, s, f);
    REQUIRE_MESSAGE(id.has_value(), (id ? "" : id.error().message));
    CHECK(id->kind == WorkloadIdentity::Kind::kubernetes);
    CHECK(id->ns == "tenant-a");
    CHECK(id->pod == "web");
    CHECK(id->podUid == "uid-a1");
    CHECK(id->container == "app");
    CHECK(id->image == "localhost/busybox:latest");

    // A CRI client's sandbox_config naming another namespace than the pod's.
    f.sandboxSpec = sandboxSpec("tenant-b", "web", "uid-a1");
    CHECK(identifyError(Integration::containerdCri, s, f) ==
          "the container names pod tenant-a/web (uid uid-a1), but its sandbox belongs to pod tenant-b/web (uid uid-a1)");
    f.sandboxSpec = sandboxSpec("tenant-b\\nx", "web", "uid-a1");
    CHECK(identifyError(Integration::containerdCri, s, f) ==
          "the container names pod tenant-a/web (uid uid-a1), but its sandbox belongs to pod \"tenant-b?x\"/web (uid uid-a1)");
    OciState odd = s;
    odd.annotations["io.kubernetes.cri.sandbox-name"] = "web\n2";
    CHECK(identifyError(Integration::containerdCri, odd, f) ==
          "the annotation io.kubernetes.cri.sandbox-name is not a name: \"web?2\"");
    f.sandboxSpec = sandboxSpec("tenant-a", "web", "uid-a1", kSandbox, "container");
    CHECK(identifyError(Integration::containerdCri, s, f) ==
          "the pod sandbox \"" + kSandbox + "\"'s config.json is not that sandbox's");
    f.sandboxSpec = "{";
    CHECK(identifyError(Integration::containerdCri, s, f) == "the pod sandbox's config.json has no annotations");

    f.sandboxSpec = sandboxSpec("tenant-a", "web", "uid-a1");
    OciState sandbox = s;
    sandbox.annotations["io.kubernetes.cri.container-type"] = "sandbox";
    CHECK(identifyError(Integration::containerdCri, sandbox, f) ==
          "the annotation io.kubernetes.cri.container-type says \"sandbox\", not a workload container");
    for (const char* key : {"io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-namespace",
                            "io.kubernetes.cri.sandbox-name", "io.kubernetes.cri.sandbox-uid",
                            "io.kubernetes.cri.container-name", "io.kubernetes.cri.sandbox-id"}) {
        OciState missing = s;
        missing.annotations.erase(key);
        CHECK(identifyError(Integration::containerdCri, missing, f) ==
              std::string("the annotation ") + key + ", which containerd-cri sets, is missing");
    }
}

TEST_CASE("containerd CRI: the sandbox id must be an id before it names a path") {
    OciState s = criContainer();
    s.annotations["io.kubernetes.cri.sandbox-id"] = "../../../etc";
    auto f = gatherFacts(Integration::containerdCri, s);
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().message == "the annotation io.kubernetes.cri.sandbox-id is not an id");
}

TEST_CASE("CRI-O: kubelet's labels, checked against CRI-O's sandbox name and the container's cgroup") {
    OciState s;
    s.id = kId;
    s.annotations = {{"io.kubernetes.cri-o.ContainerType", "container"},
                     {"io.kubernetes.pod.namespace", "tenant-a"},
                     {"io.kubernetes.pod.name", "web"},
                     {"io.kubernetes.pod.uid", "uid-a1"},
                     {"io.kubernetes.container.name", "app"},
                     {"io.kubernetes.cri-o.SandboxName", "k8s_web_tenant-a_uid-a1_0"}};
    WorkloadFacts f;
    f.cgroup = "0::/kubepods.slice/kubepods-pod.slice/crio-" + kId + ".scope/container\n";
    CHECK(identifyError(Integration::crio, s, f) == "identified as kubernetes pod tenant-a/web container app");
    s.annotations["io.kubernetes.cri-o.SandboxName"] = "k8s_web_tenant-b_uid-a1_0";
    CHECK(identifyError(Integration::crio, s, f) ==
          "the container names pod tenant-a/web, but its sandbox is \"k8s_web_tenant-b_uid-a1_0\"");
    s.annotations["io.kubernetes.cri-o.SandboxName"] = "k8s_web_tenant-a_uid-a1_0";
    f.cgroup = "0::/system.slice/libpod-" + kId + ".scope\n";
    CHECK(identifyError(Integration::crio, s, f) == "the container's init is not in CRI-O's cgroup for it (crio-<id>)");
}

TEST_CASE("Podman: the name from the conmon that started the runtime, in Podman's cgroup for the container") {
    const OciState s = podmanContainer();
    CHECK(identifyError(Integration::podman, s, podmanFacts()) == "identified as podman container web-1");
    // The exit command's arguments repeat option names: the first -n counts.
    WorkloadFacts eq = podmanFacts();
    eq.conmonArgs = {"/usr/bin/conmon", "--cid=" + kId, "--name=web-2"};
    CHECK(identifyError(Integration::podman, s, eq) == "identified as podman container web-2");
    CHECK(identifyError(Integration::podman, s, podmanFacts("web-1", "0000")) ==
          "the conmon above the hook is not this container's");
    WorkloadFacts noName = podmanFacts();
    noName.conmonArgs = {"/usr/bin/conmon", "-c", kId};
    CHECK(identifyError(Integration::podman, s, noName) == "the conmon above the hook names no container");
    WorkloadFacts disabled = podmanFacts();
    disabled.cgroup = "0::/user.slice/session-1.scope\n";
    CHECK(identifyError(Integration::podman, s, disabled) ==
          "the container's init is not in Podman's cgroup for it (libpod-<id>): Podman with --cgroups=disabled is "
          "not supported");
    WorkloadFacts systemd = podmanFacts();
    systemd.cgroup = "0::/machine.slice/libpod-" + kId + ".scope/container\n";
    CHECK(identifyError(Integration::podman, s, systemd) == "identified as podman container web-1");
    // Nothing an image writes into the annotations moves the identity.
    OciState hostile = s;
    hostile.annotations["io.kubernetes.cri.sandbox-namespace"] = "tenant-a";
    hostile.annotations["io.podman.annotations.name"] = "web-2";
    CHECK(identifyError(Integration::podman, hostile, podmanFacts()) == "identified as podman container web-1");
}

TEST_CASE("root's integrations refuse a spec Kubernetes made (a hook registered for the wrong integration)") {
    OciState s = criContainer();
    for (Integration i : {Integration::bundle, Integration::containerd})
        CHECK(identifyError(i, s, {}) ==
              "a Kubernetes container, but the hook is registered with --integration " +
                  std::string(integrationName(i)) + " (containers started by root): register it for containerd-cri or cri-o");
    OciState crio;
    crio.annotations = {{"io.kubernetes.cri-o.ContainerType", "container"}};
    CHECK(identifyError(Integration::bundle, crio, {}).find("a Kubernetes container") == 0);
    OciState plain;
    plain.annotations = {{"io.secretshim.secrets", "db"}};
    CHECK(identifyError(Integration::bundle, plain, {}) == "identified as a container started by root (bundle)");
}

TEST_CASE("Podman: a hook with no conmon above it (not started by Podman) cannot tell who the container is") {
    OciState s = podmanContainer();
    s.pid = ::getpid();
    auto f = gatherFacts(Integration::podman, s);
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().message == "no conmon process above the hook: was this container started by Podman?");
}
