#include <string>

#include <doctest/doctest.h>

#include "plugin/wrapper/spec_hooks.hpp"

using namespace secretshim::plugin;
using nlohmann::json;

namespace {

HookSettings settings() {
    HookSettings s;
    s.hookPath = "/usr/libexec/secretshim/secretshim-hook";
    return s;
}

json specWith(const json& annotations) {
    return {{"ociVersion", "1.0.2"}, {"root", {{"path", "rootfs"}}}, {"annotations", annotations}};
}

}  // namespace

TEST_CASE("which specs ask for secrets") {
    CHECK(specAsksForSecrets(specWith({{"io.secretshim.secrets", "db_pass"}})));
    CHECK(specAsksForSecrets(specWith({{"io.secretshim.task", "web.1"}})));
    CHECK(specAsksForSecrets(specWith({{"io.secretshim.secrets", ""}})));  // the hook refuses it
    // A pod's containers ask by name: any key of ours brings the hook,
    // which decides (a sidecar the pod does not name costs its fast path).
    CHECK(specAsksForSecrets(specWith({{"io.secretshim.secrets.app", "db_pass"}})));
    CHECK_FALSE(specAsksForSecrets(specWith({{"io.secretshimx.secrets", "a"}, {"xio.secretshim.task", "a"}, {"other", "x"}})));
    CHECK_FALSE(specAsksForSecrets(specWith(json::object())));
    CHECK_FALSE(specAsksForSecrets({{"ociVersion", "1.0.2"}}));
    CHECK_FALSE(specAsksForSecrets({{"annotations", "not an object"}}));
    CHECK_FALSE(specAsksForSecrets(json::array()));
    // A CRI pod's pause container: no secrets.
    CHECK_FALSE(specAsksForSecrets(
        specWith({{"io.secretshim.secrets", "a"}, {"io.kubernetes.cri.container-type", "sandbox"}})));
    CHECK(specAsksForSecrets(
        specWith({{"io.secretshim.secrets", "a"}, {"io.kubernetes.cri.container-type", "container"}})));
}

TEST_CASE("hooks are added at createRuntime and poststop") {
    json spec = specWith({{"io.secretshim.secrets", "db_pass"}});
    auto changed = addSecretshimHooks(spec, settings());
    REQUIRE(changed.has_value());
    CHECK(*changed);
    const json want = {{"createRuntime",
                        {{{"path", "/usr/libexec/secretshim/secretshim-hook"},
                          {"args", {"secretshim-hook", "--integration", "containerd", "createRuntime"}},
                          {"timeout", 10}}}},
                       {"poststop",
                        {{{"path", "/usr/libexec/secretshim/secretshim-hook"},
                          {"args", {"secretshim-hook", "--integration", "containerd", "poststop"}},
                          {"timeout", 10}}}}};
    CHECK(spec["hooks"] == want);
    CHECK(spec["root"]["path"] == "rootfs");  // the rest untouched
}

TEST_CASE("a socket goes into the hook's arguments") {
    json spec = specWith({{"io.secretshim.secrets", "x"}});
    HookSettings s = settings();
    s.socket = "/tmp/a.sock";
    REQUIRE(addSecretshimHooks(spec, s).has_value());
    CHECK(spec["hooks"]["createRuntime"][0]["args"] ==
          json({"secretshim-hook", "--integration", "containerd", "--socket", "/tmp/a.sock", "createRuntime"}));
    CHECK(spec["hooks"]["poststop"][0]["args"] ==
          json({"secretshim-hook", "--integration", "containerd", "--socket", "/tmp/a.sock", "poststop"}));
}

TEST_CASE("the wrapper under its CRI name tells the hook a pod's container is starting") {
    json spec = specWith({{"io.secretshim.secrets.app", "x"}});
    HookSettings s = settings();
    s.integration = "containerd-cri";
    REQUIRE(addSecretshimHooks(spec, s).has_value());
    CHECK(spec["hooks"]["createRuntime"][0]["args"] ==
          json({"secretshim-hook", "--integration", "containerd-cri", "createRuntime"}));
}

TEST_CASE("the spec's own hooks are kept, ours run after them") {
    json spec = specWith({{"io.secretshim.secrets", "x"}});
    spec["hooks"] = {{"createRuntime", {{{"path", "/bin/other"}}}}, {"prestart", {{{"path", "/bin/p"}}}}};
    REQUIRE(addSecretshimHooks(spec, settings()).value_or(false));
    REQUIRE(spec["hooks"]["createRuntime"].size() == 2);
    CHECK(spec["hooks"]["createRuntime"][0]["path"] == "/bin/other");
    CHECK(spec["hooks"]["createRuntime"][1]["path"] == "/usr/libexec/secretshim/secretshim-hook");
    CHECK(spec["hooks"]["prestart"].size() == 1);
    CHECK(spec["hooks"]["poststop"].size() == 1);
}

TEST_CASE("hooks already there (a base spec, a second create) are not added twice") {
    json spec = specWith({{"io.secretshim.secrets", "x"}});
    REQUIRE(addSecretshimHooks(spec, settings()).value_or(false));
    const json once = spec;
    auto again = addSecretshimHooks(spec, settings());
    REQUIRE(again.has_value());
    CHECK_FALSE(*again);
    CHECK(spec == once);

    json prestart = specWith({{"io.secretshim.secrets", "x"}});
    prestart["hooks"] = {{"prestart", {{{"path", "/usr/libexec/secretshim/secretshim-hook"}}}}};
    REQUIRE(addSecretshimHooks(prestart, settings()).value_or(false));  // poststop added
    CHECK_FALSE(prestart["hooks"].contains("createRuntime"));
    CHECK(prestart["hooks"]["poststop"].size() == 1);
}

TEST_CASE("malformed hooks are refused and the spec is left as it was") {
    for (const json& bad : {json("x"), json::array()}) {
        json spec = specWith({{"io.secretshim.secrets", "x"}});
        spec["hooks"] = bad;
        const json before = spec;
        auto r = addSecretshimHooks(spec, settings());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message == "config.json: hooks is not an object");
        CHECK(spec == before);
    }
    json spec = specWith({{"io.secretshim.secrets", "x"}});
    spec["hooks"] = {{"poststop", {{"path", "/x"}}}};
    const json before = spec;
    auto r = addSecretshimHooks(spec, settings());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "config.json: hooks.poststop is not an array");
    CHECK(spec == before);
}

TEST_CASE("null hooks are replaced") {
    json spec = specWith({{"io.secretshim.secrets", "x"}});
    spec["hooks"] = nullptr;
    REQUIRE(addSecretshimHooks(spec, settings()).value_or(false));
    CHECK(spec["hooks"]["createRuntime"].size() == 1);
}

TEST_CASE("a relative hook path is refused") {
    json spec = specWith({{"io.secretshim.secrets", "x"}});
    HookSettings s = settings();
    s.hookPath = "secretshim-hook";
    auto r = addSecretshimHooks(spec, s);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "the hook path \"secretshim-hook\" is not absolute");
}
