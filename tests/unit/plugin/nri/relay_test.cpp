// secretshim-nri's decisions at CreateContainer: what the pod asks for the
// container and who the runtime says it is; the hooks it has the runtime
// add; and a refusal, never a container without its hook, when the agent
// cannot be asked. (tests/integration/nri_e2e.sh runs it under containerd.)
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "plugin/identity/workload_identity.hpp"
#include "plugin/nri/relay.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using namespace secretshim::plugin::nri;

namespace {

nriapi::CreateContainerRequest podAsking(const std::string& container, std::map<std::string, std::string> annotations) {
    nriapi::CreateContainerRequest r;
    r.mutable_pod()->set_namespace_("tenant-a");
    r.mutable_pod()->set_name("web");
    r.mutable_pod()->set_uid("0f2c");
    for (const auto& [k, v] : annotations) (*r.mutable_pod()->mutable_annotations())[k] = v;
    r.mutable_container()->set_id("c0ffee");
    r.mutable_container()->set_name(container);
    return r;
}

std::vector<std::string> args(const nriapi::Hook& hook) { return {hook.args().begin(), hook.args().end()}; }

}  // namespace

TEST_CASE("the pod's annotation for the container is its request; the runtime's pod is its identity") {
    const auto request = podAsking("app", {{"io.secretshim.secrets.app", "db_pass;source=tls,mode=0400"},
                                           {"io.secretshim.secrets.other", "api_key"}});
    auto asked = announcement(request);
    REQUIRE(asked);
    REQUIRE(asked->has_value());
    const NriCreateRequest& a = **asked;
    CHECK(a.id == "c0ffee");
    CHECK(a.secrets == "db_pass;source=tls,mode=0400");
    CHECK(a.task.empty());
    auto identity = WorkloadIdentity::fromJson(a.identity);
    REQUIRE(identity);
    CHECK(identity->integration == Integration::nri);
    CHECK(identity->describe() == "kubernetes pod tenant-a/web container app");
    CHECK(identity->podUid == "0f2c");
    // A sidecar the pod does not name asks for nothing.
    auto sidecar = announcement(podAsking("side", {{"io.secretshim.secrets.app", "db_pass"}}));
    REQUIRE(sidecar);
    CHECK_FALSE(sidecar->has_value());
    // A cluster task alone is a request too.
    auto task = announcement(podAsking("app", {{"io.secretshim.task.app", "web-1"}}));
    REQUIRE(task);
    REQUIRE(task->has_value());
    CHECK((*task)->task == "web-1");
}

TEST_CASE("the plain keys would reach the pod's sidecars: refused") {
    for (const char* key : {"io.secretshim.secrets", "io.secretshim.task"}) {
        auto asked = announcement(podAsking("app", {{key, "db_pass"}}));
        REQUIRE_FALSE(asked);
        CHECK(asked.error().message == std::string("the annotation ") + key +
                                           " would reach every container of the pod, sidecars too: name the container (" +
                                           key + ".<container name>)");
    }
}

TEST_CASE("an announced container gets the hook at createRuntime and poststop, and the mark its fast path looks for") {
    const auto adjust = adjustment("/usr/libexec/secretshim/secretshim-hook", "/run/secretshim/agent.sock");
    CHECK(adjust.annotations().at("io.secretshim.nri") == "1");
    REQUIRE(adjust.hooks().create_runtime_size() == 1);
    REQUIRE(adjust.hooks().poststop_size() == 1);
    CHECK(adjust.hooks().prestart_size() == 0);
    const auto& create = adjust.hooks().create_runtime(0);
    CHECK(create.path() == "/usr/libexec/secretshim/secretshim-hook");
    CHECK(args(create) == std::vector<std::string>{"/usr/libexec/secretshim/secretshim-hook", "--socket",
                                                   "/run/secretshim/agent.sock", "--integration", "nri",
                                                   "createRuntime"});
    CHECK(create.timeout().value() == 10);
    CHECK(args(adjust.hooks().poststop(0)).back() == "poststop");
}

TEST_CASE("without an agent to ask, a container that asks is refused and one that does not is let through") {
    Relay relay("/nonexistent/secretshim/agent.sock", "/usr/libexec/secretshim/secretshim-hook");
    auto refused = relay.createContainer(podAsking("app", {{"io.secretshim.secrets.app", "db_pass"}}));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.rfind("cannot reach the secretshim agent at /nonexistent/secretshim/agent.sock", 0) == 0);
    auto plain = relay.createContainer(podAsking("app", {}));
    REQUIRE(plain);
    CHECK(plain->hooks().create_runtime_size() == 0);
    CHECK(plain->annotations().empty());
    CHECK(relay.events() == (0x008 | 0x200 | 0x400));
}
