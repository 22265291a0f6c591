// One NRI connection, plugin side, against a runtime played by the test
// with the same framing: registration, the calls a secrets plugin answers,
// refusals, and what makes the connection unusable.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "plugin/nri/session.hpp"
#include "ttrpc.pb.h"

using namespace secretshim;
using namespace secretshim::plugin::nri;
namespace api = nriapi;

namespace {

class Recorder final : public Handler {
public:
    std::vector<std::string> seen;
    std::vector<Clock::time_point> deadlines;
    std::string refuseWith;  // non-empty: CreateContainer is refused with it
    std::size_t hookArgs = 1;

    std::int32_t events() const override { return eventBit(api::STOP_CONTAINER) | eventBit(api::REMOVE_CONTAINER); }
    void synchronize(const api::SynchronizeRequest& r) override {
        seen.push_back("sync " + std::to_string(r.pods_size()) + " " + std::to_string(r.containers_size()));
    }
    Result<api::ContainerAdjustment> createContainer(const api::CreateContainerRequest& r,
                                                     Clock::time_point deadline) override {
        deadlines.push_back(deadline);
        seen.push_back("create " + r.pod().namespace_() + "/" + r.pod().name() + " " + r.container().name());
        if (!refuseWith.empty()) return fail(refuseWith);
        api::ContainerAdjustment adjust;
        auto* hook = adjust.mutable_hooks()->add_create_runtime();
        hook->set_path("/usr/libexec/secretshim/secretshim-hook");
        for (std::size_t i = 0; i < hookArgs; ++i) hook->add_args("arg" + std::to_string(i));
        return adjust;
    }
    void stopContainer(const api::StopContainerRequest& r, Clock::time_point deadline) override {
        deadlines.push_back(deadline);
        seen.push_back("stop " + r.container().id());
    }
    void stateChange(const api::StateChangeEvent& e, Clock::time_point deadline) override {
        deadlines.push_back(deadline);
        seen.push_back("event " + std::to_string(e.event()) + " " + e.container().id());
    }
};

std::span<const unsigned char> bytesOf(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

// The runtime's side: calls on connection 1, decoded answers.
struct Runtime {
    Decoder decoder;
    std::uint32_t next = 1;

    std::int64_t timeoutNano = 0;  // on the next calls

    std::string call(const std::string& method, const google::protobuf::MessageLite& body,
                     const std::string& service = "nri.pkg.api.v1alpha1.Plugin") {
        ttrpcapi::Request request;
        request.set_service(service);
        request.set_method(method);
        request.set_timeout_nano(timeoutNano);
        body.SerializeToString(request.mutable_payload());
        auto bytes = encode(kPluginConn, next, MessageType::request, request.SerializeAsString());
        next += 2;
        REQUIRE(bytes);
        return *bytes;
    }
    // Every frame we get must fit containerd's 4096-byte reader.
    std::vector<Message> read(const std::string& bytes) {
        for (std::size_t at = 0; at < bytes.size();) {
            const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
            const std::size_t length = std::size_t{p[4]} << 24 | p[5] << 16 | p[6] << 8 | p[7];
            CHECK(kMuxHeader + length <= kMaxSentFrame);
            at += kMuxHeader + length;
        }
        auto got = decoder.feed(bytesOf(bytes));
        REQUIRE(got);
        return *got;
    }
    ttrpcapi::Response response(Session& s, const std::string& bytes, Clock::time_point now = Clock::now()) {
        auto out = s.feed(bytesOf(bytes), now);
        REQUIRE(out);
        auto messages = read(*out);
        REQUIRE(messages.size() == 1);
        CHECK(messages[0].conn == kPluginConn);
        CHECK(messages[0].type == 2);
        CHECK(messages[0].stream == next - 2);
        ttrpcapi::Response r;
        REQUIRE(r.ParseFromString(messages[0].payload));
        return r;
    }
};

std::string registrationReply(std::int32_t code = 0) {
    ttrpcapi::Response response;
    response.mutable_status()->set_code(code);
    if (code != 0) response.mutable_status()->set_message("plugin index 01 is taken");
    return *encode(kRuntimeConn, 1, MessageType::response, response.SerializeAsString());
}

api::CreateContainerRequest createRequest() {
    api::CreateContainerRequest create;
    create.mutable_pod()->set_namespace_("tenant-a");
    create.mutable_pod()->set_name("web");
    create.mutable_pod()->set_uid("uid-1");
    create.mutable_container()->set_id("c1");
    create.mutable_container()->set_name("app");
    return create;
}

}  // namespace

TEST_CASE("the plugin registers, is configured with its events, and is synchronized") {
    Recorder handler;
    Session session(handler, "secretshim", "50");
    Runtime runtime;
    auto hello = session.start();
    REQUIRE(hello);
    auto sent = runtime.read(*hello);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].conn == kRuntimeConn);
    CHECK(sent[0].stream == 1);
    CHECK(sent[0].type == 1);
    ttrpcapi::Request request;
    REQUIRE(request.ParseFromString(sent[0].payload));
    CHECK(request.service() == "nri.pkg.api.v1alpha1.Runtime");
    CHECK(request.method() == "RegisterPlugin");
    api::RegisterPluginRequest registration;
    REQUIRE(registration.ParseFromString(request.payload()));
    CHECK(registration.plugin_name() == "secretshim");
    CHECK(registration.plugin_idx() == "50");

    // containerd may call Configure before it answers RegisterPlugin.
    api::ConfigureRequest configure;
    configure.set_runtime_name("containerd");
    auto configured = runtime.response(session, runtime.call("Configure", configure));
    CHECK(configured.status().code() == 0);
    api::ConfigureResponse events;
    REQUIRE(events.ParseFromString(configured.payload()));
    CHECK(events.events() == (0x008 | 0x200 | 0x400));
    CHECK_FALSE(session.registered());
    auto acknowledged = session.feed(bytesOf(registrationReply()));
    REQUIRE(acknowledged);
    CHECK(acknowledged->empty());
    CHECK(session.registered());

    api::SynchronizeRequest sync;
    sync.add_pods()->set_id("p1");
    sync.add_containers()->set_id("c0");
    sync.add_containers()->set_id("c9");
    CHECK(runtime.response(session, runtime.call("Synchronize", sync)).status().code() == 0);
    CHECK(session.synchronized());
    CHECK(handler.seen == std::vector<std::string>{"sync 1 2"});
}

TEST_CASE("CreateContainer gets the handler's adjustment or its refusal; stops and events reach the handler") {
    Recorder handler;
    Session session(handler, "secretshim", "50");
    Runtime runtime;
    REQUIRE(session.start());

    auto created = runtime.response(session, runtime.call("CreateContainer", createRequest()));
    CHECK(created.status().code() == 0);
    api::CreateContainerResponse adjusted;
    REQUIRE(adjusted.ParseFromString(created.payload()));
    REQUIRE(adjusted.adjust().hooks().create_runtime_size() == 1);
    CHECK(adjusted.adjust().hooks().create_runtime(0).path() == "/usr/libexec/secretshim/secretshim-hook");

    handler.refuseWith = "secret \"db\" is not granted to kubernetes pod tenant-a/web container app";
    auto refused = runtime.response(session, runtime.call("CreateContainer", createRequest()));
    CHECK(refused.status().code() == kPermissionDenied);
    CHECK(refused.status().message() ==
          "secretshim: secret \"db\" is not granted to kubernetes pod tenant-a/web container app");
    CHECK(refused.payload().empty());

    api::StopContainerRequest stop;
    stop.mutable_container()->set_id("c1");
    CHECK(runtime.response(session, runtime.call("StopContainer", stop)).status().code() == 0);
    api::StateChangeEvent removed;
    removed.set_event(api::REMOVE_CONTAINER);
    removed.mutable_container()->set_id("c1");
    CHECK(runtime.response(session, runtime.call("StateChange", removed)).status().code() == 0);
    CHECK(runtime.response(session, runtime.call("Shutdown", api::Empty())).status().code() == 0);
    CHECK(handler.seen == std::vector<std::string>{"create tenant-a/web app", "create tenant-a/web app", "stop c1",
                                                   "event 11 c1"});

    // What the plugin does not serve is refused, and the connection goes on.
    auto unknown = runtime.response(session, runtime.call("UpdateContainer", api::Empty()));
    CHECK(unknown.status().code() == kUnimplemented);
    CHECK(unknown.status().message() == "method UpdateContainer");
    auto otherService = runtime.response(session, runtime.call("Configure", api::Empty(), "some.Other"));
    CHECK(otherService.status().code() == kUnimplemented);
    CHECK(runtime.response(session, runtime.call("StopContainer", stop)).status().code() == 0);
}

TEST_CASE("a large adjustment goes out in frames containerd's reader takes") {
    Recorder handler;
    handler.hookArgs = 2000;  // about 12 KB, the size that made containerd drop a plugin sending one frame
    Session session(handler, "secretshim", "50");
    Runtime runtime;
    auto created = runtime.response(session, runtime.call("CreateContainer", createRequest()));
    api::CreateContainerResponse adjusted;
    REQUIRE(adjusted.ParseFromString(created.payload()));
    CHECK(adjusted.adjust().hooks().create_runtime(0).args_size() == 2000);
    CHECK(created.payload().size() > 3 * kMaxSentFrame);
}

TEST_CASE("what puts the streams out of step ends the connection, in one line") {
    Recorder handler;
    Runtime runtime;
    SUBCASE("a refused registration") {
        Session session(handler, "secretshim", "01");
        REQUIRE(session.start());
        auto out = session.feed(bytesOf(registrationReply(9)));
        REQUIRE_FALSE(out);
        CHECK(out.error().message == "NRI: the runtime refused the registration: plugin index 01 is taken");
    }
    SUBCASE("a second registration reply") {
        Session session(handler, "secretshim", "50");
        REQUIRE(session.feed(bytesOf(registrationReply())));
        auto out = session.feed(bytesOf(registrationReply()));
        REQUIRE_FALSE(out);
        CHECK(out.error().message == "NRI: an unexpected message from the runtime on connection 2");
    }
    SUBCASE("a call whose stream id goes backwards") {
        Session session(handler, "secretshim", "50");
        const std::string first = runtime.call("Shutdown", api::Empty());
        REQUIRE(session.feed(bytesOf(first)));
        auto out = session.feed(bytesOf(first));
        REQUIRE_FALSE(out);
        CHECK(out.error().message == "NRI: an unexpected message from the runtime on connection 1 (type 1, stream 1)");
    }
    SUBCASE("an index that is not two digits") {
        Session session(handler, "secretshim", "5");
        auto out = session.start();
        REQUIRE_FALSE(out);
        CHECK(out.error().message == "NRI: the plugin index \"5\" is not two digits");
    }
}

TEST_CASE("a call whose payload does not parse is refused on its stream, and the connection goes on") {
    Recorder handler;
    Session session(handler, "secretshim", "50");
    Runtime runtime;
    ttrpcapi::Request request;
    request.set_service("nri.pkg.api.v1alpha1.Plugin");
    request.set_method("CreateContainer");
    request.set_payload("\xff\xff\xff");
    runtime.next += 2;
    auto refused = runtime.response(session, *encode(kPluginConn, 1, MessageType::request, request.SerializeAsString()));
    CHECK(refused.status().code() == kInvalidArgument);
    CHECK(refused.status().message() == "NRI: a malformed CreateContainer request");
    CHECK(handler.seen.empty());
    CHECK(runtime.response(session, runtime.call("CreateContainer", createRequest())).status().code() == 0);
    CHECK(handler.seen == std::vector<std::string>{"create tenant-a/web app"});
}

TEST_CASE("each call is answered within the runtime's time for it, less a margin for the way back") {
    using namespace std::chrono_literals;
    const Clock::time_point t0{};
    CHECK(callDeadline(2'000'000'000, t0) == t0 + 1500ms);  // containerd's default: 500 ms kept back
    CHECK(callDeadline(1'000'000'000, t0) == t0 + 750ms);   // a quarter of a short one
    CHECK(callDeadline(0, t0) == t0 + 1500ms);              // none given: containerd's default

    Recorder handler;
    Session session(handler, "secretshim", "50");
    Runtime runtime;
    const Clock::time_point arrived = Clock::now();
    runtime.timeoutNano = 1'000'000'000;
    runtime.response(session, runtime.call("CreateContainer", createRequest()), arrived);
    api::StopContainerRequest stop;
    stop.mutable_container()->set_id("c1");
    runtime.timeoutNano = 4'000'000'000;  // an admin's longer plugin_request_timeout is used
    runtime.response(session, runtime.call("StopContainer", stop), arrived);
    CHECK(handler.deadlines == std::vector<Clock::time_point>{arrived + 750ms, arrived + 3500ms});
}
