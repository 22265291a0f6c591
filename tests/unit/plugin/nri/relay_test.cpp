// secretshim-nri's decisions at CreateContainer: what the pod asks for the
// container and who the runtime says it is; the hooks it has the runtime
// add; a refusal, never a container without its hook, when the agent cannot
// be asked in time; and how its two instances share the work.
// (tests/integration/nri_e2e.sh runs it under containerd.)
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "platform/linux/unique_fd.hpp"
#include "plugin/identity/workload_identity.hpp"
#include "plugin/nri/relay.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

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

using namespace std::chrono_literals;
constexpr const char* kHook = "/usr/libexec/secretshim/secretshim-hook";

Clock::time_point in(std::chrono::milliseconds ms) { return Clock::now() + ms; }

// An agent that takes connections and never answers (hung, or stopped);
// it counts the requests it was sent.
class SilentAgent {
public:
    SilentAgent() : path_(dir_ / "agent.sock"), listener_(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listener_.get(), 16) == 0);
    }
    const std::string& path() const { return path_; }
    // Requests sent so far (connections taken, and one message read each).
    int requests() {
        for (;;) {
            platform::UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!c) break;
            char byte;
            if (::recv(c.get(), &byte, 1, 0) >= 0) ++requests_;
            held_.push_back(std::move(c));
        }
        return requests_;
    }

private:
    secretshim::test::TempDir dir_;
    std::string path_;
    platform::UniqueFd listener_;
    std::vector<platform::UniqueFd> held_;
    int requests_ = 0;
};

// The hooks need an agent that is root's, as the real one is.
const bool kRoot = ::geteuid() == 0;

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
    auto refused = relay.createContainer(podAsking("app", {{"io.secretshim.secrets.app", "db_pass"}}), in(1500ms));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.rfind("cannot reach the secretshim agent at /nonexistent/secretshim/agent.sock", 0) == 0);
    auto plain = relay.createContainer(podAsking("app", {}), in(1500ms));
    REQUIRE(plain);
    CHECK(plain->hooks().create_runtime_size() == 0);
    CHECK(plain->annotations().empty());
    CHECK(relay.events() == (0x008 | 0x200 | 0x400));
}

TEST_CASE("a hung agent is a refusal within the call's time, never a plugin the runtime drops" *
          doctest::skip(secretshim::testing::skipUnless(kRoot, "the agent's socket must be root's"))) {
    SilentAgent agent;
    Relay relay(agent.path(), kHook);
    const auto asked = Clock::now();
    auto refused = relay.createContainer(podAsking("app", {{"io.secretshim.secrets.app", "db_pass"}}), asked + 300ms);
    const auto took = Clock::now() - asked;
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("timed out waiting for the secretshim agent") != std::string::npos);
    CHECK(agent.requests() == 1);
    CHECK(took >= 250ms);
    CHECK(took < 1000ms);  // the runtime's 2 s would drop us; the deadline said 300 ms
    // No time left: refused without asking.
    auto late = relay.createContainer(podAsking("app", {{"io.secretshim.secrets.app", "db_pass"}}), in(10ms));
    REQUIRE_FALSE(late);
    CHECK(late.error().message ==
          "too little of the runtime's time for this call is left to ask the secretshim agent");
    CHECK(agent.requests() == 1);
}

TEST_CASE("the instance asked second adds nothing to a container the first one adjusted") {
    // No agent: an instance that asked would be refused.
    Relay relay("/nonexistent/secretshim/agent.sock", kHook);
    auto request = podAsking("app", {{"io.secretshim.secrets.app", "db_pass"}});
    const auto first = adjustment(kHook, "/nonexistent/secretshim/agent.sock");
    *request.mutable_container()->mutable_hooks() = first.hooks();
    auto second = relay.createContainer(request, in(1500ms));
    REQUIRE(second);
    CHECK(second->hooks().create_runtime_size() == 0);
    CHECK(second->annotations().empty());
    // A hook of ours with other arguments (the 1.6 path's, an admin's) is
    // not this plugin's: the container is still announced (and refused here).
    request.mutable_container()->mutable_hooks()->mutable_create_runtime(0)->set_args(4, "cri");
    CHECK_FALSE(relay.createContainer(request, in(1500ms)));
}

TEST_CASE("the standby relays stops only once the other instance is gone" *
          doctest::skip(secretshim::testing::skipUnless(kRoot, "the agent's socket must be root's"))) {
    SilentAgent agent;
    Relay relay(agent.path(), kHook);
    bool peer = true;
    relay.standBy([&] { return peer; });
    nriapi::StopContainerRequest stop;
    stop.mutable_container()->set_id("c0ffee");
    nriapi::StateChangeEvent removed;
    removed.set_event(nriapi::REMOVE_CONTAINER);
    removed.mutable_container()->set_id("c0ffee");
    relay.stopContainer(stop, in(100ms));
    relay.stateChange(removed, in(100ms));
    CHECK(agent.requests() == 0);
    peer = false;
    relay.stopContainer(stop, in(100ms));
    relay.stateChange(removed, in(100ms));
    CHECK(agent.requests() == 2);
    // Creates are never left to the other instance: it may be the one gone.
    CHECK_FALSE(relay.createContainer(podAsking("app", {{"io.secretshim.secrets.app", "db_pass"}}), in(100ms)));
    CHECK(agent.requests() == 3);
}
