#include <string>

#include <doctest/doctest.h>

#include "plugin/hook/oci_state.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

OciState stateOk(const std::string& json) {
    auto state = parseOciState(json);
    if (!state) FAIL_CHECK("unexpected error: " << state.error().message);
    REQUIRE(state.has_value());
    return *state;
}

std::string stateError(const std::string& json) {
    auto state = parseOciState(json);
    REQUIRE_FALSE(state.has_value());
    CHECK(state.error().code == 0);
    return state.error().message;
}

std::string rootfsOk(const std::string& json, const std::string& bundle) {
    auto path = parseRootfsPath(json, bundle);
    if (!path) FAIL_CHECK("unexpected error: " << path.error().message);
    REQUIRE(path.has_value());
    return *path;
}

std::string rootfsError(const std::string& json, const std::string& bundle) {
    auto path = parseRootfsPath(json, bundle);
    REQUIRE_FALSE(path.has_value());
    CHECK(path.error().code == 0);
    return path.error().message;
}

const std::string kNotObject = "the OCI state on stdin is not a JSON object";
const std::string kNoId = "the OCI state has no container id";
const std::string kBadPid = "the OCI state has an invalid pid";
const std::string kBadBundle = "the OCI state has an invalid bundle";
const std::string kBadAnnotations = "the OCI state's annotations are not an object";

}  // namespace

TEST_CASE("a runc-style createRuntime state") {
    const auto state = stateOk(R"({
        "ociVersion": "1.0.2-dev",
        "id": "4b5c6d7e8f90",
        "status": "creating",
        "pid": 12345,
        "bundle": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/4b5c6d7e8f90",
        "annotations": {
            "io.secretshim.secrets": "db-password:/run/secrets/db",
            "io.kubernetes.cri.container-type": "container"
        }
    })");
    CHECK(state.id == "4b5c6d7e8f90");
    CHECK(state.status == "creating");
    CHECK(state.pid == 12345);
    CHECK(state.bundle == "/run/containerd/io.containerd.runtime.v2.task/k8s.io/4b5c6d7e8f90");
    REQUIRE(state.annotations.size() == 2);
    CHECK(state.annotations.at("io.secretshim.secrets") == "db-password:/run/secrets/db");
    CHECK(state.annotations.at("io.kubernetes.cri.container-type") == "container");
}

TEST_CASE("a crun-style state with an extra root key") {
    const auto state = stateOk(R"({"ociVersion":"1.0.0","id":"crun-ctr","pid":777,"root":"/run/crun/crun-ctr",)"
                               R"("status":"created","bundle":"/var/lib/bundles/crun-ctr",)"
                               R"("annotations":{"a":"1"}})");
    CHECK(state.id == "crun-ctr");
    CHECK(state.pid == 777);
    CHECK(state.bundle == "/var/lib/bundles/crun-ctr");
    REQUIRE(state.annotations.size() == 1);
    CHECK(state.annotations.at("a") == "1");
}

TEST_CASE("a poststop state without a pid has pid 0") {
    const auto state =
        stateOk(R"({"ociVersion":"1.0.2","id":"gone","status":"stopped","bundle":"/b/gone","annotations":{}})");
    CHECK(state.id == "gone");
    CHECK(state.status == "stopped");
    CHECK(state.pid == 0);
    CHECK(state.bundle == "/b/gone");
    CHECK(state.annotations.empty());
}

TEST_CASE("a status that is not a string is refused") {
    CHECK(stateError(R"({"id":"x","status":3})") == "the OCI state has an invalid status");
    CHECK(stateOk(R"({"id":"x"})").status.empty());
}

TEST_CASE("pid 0 is accepted as no pid") {
    const auto state = stateOk(R"({"id":"x","pid":0,"bundle":"/b"})");
    CHECK(state.pid == 0);
    CHECK(state.id == "x");
}

TEST_CASE("the largest accepted pid") {
    CHECK(stateOk(R"({"id":"x","pid":1073741823})").pid == 0x3fffffff);
}

TEST_CASE("missing or null annotations give none") {
    SUBCASE("absent") {
        const auto state = stateOk(R"({"id":"x","pid":1,"bundle":"/b"})");
        CHECK(state.annotations.empty());
        CHECK(state.pid == 1);
    }
    SUBCASE("null") {
        const auto state = stateOk(R"({"id":"x","pid":1,"bundle":"/b","annotations":null})");
        CHECK(state.annotations.empty());
        CHECK(state.bundle == "/b");
    }
}

TEST_CASE("a missing bundle is left empty") {
    const auto state = stateOk(R"({"id":"only-id"})");
    CHECK(state.id == "only-id");
    CHECK(state.bundle.empty());
    CHECK(state.pid == 0);
}

TEST_CASE("an annotation value with unicode and escapes is kept as is") {
    const auto state = stateOk(R"({"id":"x","annotations":{"k":"caf\u00e9 \"q\" \n end","empty":""}})");
    CHECK(state.annotations.at("k") == "caf\xc3\xa9 \"q\" \n end");
    CHECK(state.annotations.at("empty").empty());
}

TEST_CASE("text that is not JSON is refused") {
    CHECK(stateError("") == kNotObject);
    CHECK(stateError("not json") == kNotObject);
    CHECK(stateError(R"({"id":"x",)") == kNotObject);
    CHECK(stateError(R"({"id":"x"} trailing)") == kNotObject);
}

TEST_CASE("JSON that is not an object is refused") {
    CHECK(stateError("[]") == kNotObject);
    CHECK(stateError(R"(["id","x"])") == kNotObject);
    CHECK(stateError(R"("id")") == kNotObject);
    CHECK(stateError("42") == kNotObject);
    CHECK(stateError("null") == kNotObject);
}

TEST_CASE("a state without a usable id is refused") {
    SUBCASE("no id") { CHECK(stateError(R"({"pid":1,"bundle":"/b"})") == kNoId); }
    SUBCASE("empty id") { CHECK(stateError(R"({"id":"","pid":1})") == kNoId); }
    SUBCASE("id not a string") { CHECK(stateError(R"({"id":42})") == kNoId); }
    SUBCASE("id null") { CHECK(stateError(R"({"id":null})") == kNoId); }
}

TEST_CASE("an invalid pid is refused") {
    SUBCASE("negative") { CHECK(stateError(R"({"id":"x","pid":-1})") == kBadPid); }
    SUBCASE("a fraction") { CHECK(stateError(R"({"id":"x","pid":12.5})") == kBadPid); }
    SUBCASE("a float that looks whole") { CHECK(stateError(R"({"id":"x","pid":12.0})") == kBadPid); }
    SUBCASE("a string") { CHECK(stateError(R"({"id":"x","pid":"123"})") == kBadPid); }
    SUBCASE("a boolean") { CHECK(stateError(R"({"id":"x","pid":true})") == kBadPid); }
    SUBCASE("null") { CHECK(stateError(R"({"id":"x","pid":null})") == kBadPid); }
    SUBCASE("just above the limit") { CHECK(stateError(R"({"id":"x","pid":1073741824})") == kBadPid); }
    SUBCASE("huge") { CHECK(stateError(R"({"id":"x","pid":99999999999})") == kBadPid); }
    SUBCASE("beyond 64-bit signed") { CHECK(stateError(R"({"id":"x","pid":18446744073709551615})") == kBadPid); }
}

TEST_CASE("a bundle that is not a string is refused") {
    CHECK(stateError(R"({"id":"x","bundle":7})") == kBadBundle);
    CHECK(stateError(R"({"id":"x","bundle":["/b"]})") == kBadBundle);
    CHECK(stateError(R"({"id":"x","bundle":null})") == kBadBundle);
}

TEST_CASE("annotations that are not an object are refused") {
    CHECK(stateError(R"({"id":"x","annotations":["a","b"]})") == kBadAnnotations);
    CHECK(stateError(R"({"id":"x","annotations":"a=b"})") == kBadAnnotations);
    CHECK(stateError(R"({"id":"x","annotations":1})") == kBadAnnotations);
}

TEST_CASE("an annotation value that is not a string is refused, naming it") {
    CHECK(stateError(R"({"id":"x","annotations":{"ok":"v","count":3}})") == "annotation \"count\" is not a string");
    CHECK(stateError(R"({"id":"x","annotations":{"nested":{"a":"b"}}})") == "annotation \"nested\" is not a string");
    CHECK(stateError(R"({"id":"x","annotations":{"n":null}})") == "annotation \"n\" is not a string");
}

TEST_CASE("parseRootfsPath joins a relative root.path to the bundle") {
    const std::string config = R"({"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"process":{}})";
    CHECK(rootfsOk(config, "/run/bundles/abc") == "/run/bundles/abc/rootfs");
    CHECK(rootfsOk(R"({"root":{"path":"sub/dir/rootfs"}})", "/b") == "/b/sub/dir/rootfs");
}

TEST_CASE("parseRootfsPath keeps an absolute root.path") {
    CHECK(rootfsOk(R"({"root":{"path":"/var/lib/rootfs/abc"}})", "/run/bundles/abc") == "/var/lib/rootfs/abc");
    // An absolute path does not need the bundle at all.
    CHECK(rootfsOk(R"({"root":{"path":"/rootfs"}})", "") == "/rootfs");
    CHECK(rootfsOk(R"({"root":{"path":"/rootfs"}})", "relative/bundle") == "/rootfs");
}

TEST_CASE("parseRootfsPath refuses a config without root") {
    CHECK(rootfsError(R"({"ociVersion":"1.0.2"})", "/b") == "config.json has no root");
    CHECK(rootfsError(R"({"root":"rootfs"})", "/b") == "config.json has no root");
    CHECK(rootfsError(R"({"root":null})", "/b") == "config.json has no root");
}

TEST_CASE("parseRootfsPath refuses a root without a usable path") {
    SUBCASE("no path") { CHECK(rootfsError(R"({"root":{"readonly":true}})", "/b") == "config.json has no root.path"); }
    SUBCASE("empty path") { CHECK(rootfsError(R"({"root":{"path":""}})", "/b") == "config.json has no root.path"); }
    SUBCASE("path not a string") {
        CHECK(rootfsError(R"({"root":{"path":5}})", "/b") == "config.json has no root.path");
    }
}

TEST_CASE("parseRootfsPath refuses a relative path with a relative or empty bundle") {
    CHECK(rootfsError(R"({"root":{"path":"rootfs"}})", "bundles/abc") == "the bundle path is not absolute");
    CHECK(rootfsError(R"({"root":{"path":"rootfs"}})", "") == "the bundle path is not absolute");
}

TEST_CASE("parseRootfsPath refuses text that is not a JSON object") {
    const std::string message = "the bundle's config.json is not a JSON object";
    CHECK(rootfsError("", "/b") == message);
    CHECK(rootfsError("{root:", "/b") == message);
    CHECK(rootfsError("[1,2]", "/b") == message);
    CHECK(rootfsError(R"("rootfs")", "/b") == message);
}

TEST_CASE("a secret reference split at commas (Podman 4.3 --annotation) is refused") {
    const auto split = stateOk(R"({"id":"x","annotations":{"io.secretshim.secrets":"source=a","target":"/etc/k",)"
                               R"("mode":"0400"}})");
    const auto r = checkNoSplitReference(split);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("the annotation \"target\" looks like a piece of a secret reference split at a comma") == 0);
    CHECK(checkNoSplitReference(stateOk(R"({"id":"x","annotations":{"io.secretshim.secrets":"a,b","org.x":"1"}})")));
}

TEST_CASE("the pause container of a CRI pod is a sandbox") {
    CHECK(isPodSandbox(stateOk(R"({"id":"p","annotations":{"io.kubernetes.cri.container-type":"sandbox"}})")));
    CHECK(isPodSandbox(stateOk(R"({"id":"p","annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox"}})")));
    CHECK_FALSE(isPodSandbox(stateOk(R"({"id":"c","annotations":{"io.kubernetes.cri.container-type":"container"}})")));
    CHECK_FALSE(isPodSandbox(stateOk(R"({"id":"c"})")));
}

TEST_CASE("parseRootfsPath reports root.readonly and CAP_SYS_ADMIN in the bounding set") {
    BundleFacts f;
    f.rootReadOnly = f.mayHoldSysAdmin = true;
    CHECK(parseRootfsPath(R"({"root":{"path":"rootfs"}})", "/b", &f).value() == "/b/rootfs");
    CHECK_FALSE(f.rootReadOnly);
    CHECK_FALSE(f.mayHoldSysAdmin);
    CHECK(parseRootfsPath(R"({"root":{"path":"rootfs","readonly":true},"process":{"capabilities":)"
                          R"({"bounding":["CAP_CHOWN","CAP_SYS_ADMIN"],"effective":[]}}})",
                          "/b", &f).value() == "/b/rootfs");
    CHECK(f.rootReadOnly);
    CHECK(f.mayHoldSysAdmin);
    CHECK(parseRootfsPath(R"({"root":{"path":"/r","readonly":"yes"},"process":{"capabilities":)"
                          R"({"effective":["CAP_SYS_ADMIN"],"bounding":"CAP_SYS_ADMIN"}}})",
                          "/b", &f).value() == "/r");
    CHECK_FALSE(f.rootReadOnly);
    CHECK_FALSE(f.mayHoldSysAdmin);
}

TEST_CASE("parseRootfsPath leaves the facts untouched when it fails") {
    BundleFacts f;
    f.mayHoldSysAdmin = true;
    const auto failed = parseRootfsPath(R"({"root":{"path":"rootfs","readonly":true}})", "bundles/abc", &f);
    REQUIRE_FALSE(failed.has_value());
    CHECK_FALSE(f.rootReadOnly);
    CHECK(f.mayHoldSysAdmin);
}
