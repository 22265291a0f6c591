#include "plugin/nri/session.hpp"

#include <algorithm>
#include <cctype>

#include "ttrpc.pb.h"

namespace secretshim::plugin::nri {

namespace api = nriapi;

namespace {

constexpr std::string_view kPluginService = "nri.pkg.api.v1alpha1.Plugin";
constexpr std::string_view kRuntimeService = "nri.pkg.api.v1alpha1.Runtime";
constexpr std::uint32_t kRegisterStream = 1;  // our one call on connection 2

Result<std::string> reply(std::uint32_t stream, const google::protobuf::MessageLite& body) {
    ttrpcapi::Response response;
    if (!body.SerializeToString(response.mutable_payload())) return fail("NRI: cannot encode a reply");
    return encode(kPluginConn, stream, MessageType::response, response.SerializeAsString());
}

Result<std::string> refuse(std::uint32_t stream, std::int32_t code, const std::string& message) {
    ttrpcapi::Response response;
    response.mutable_status()->set_code(code);
    response.mutable_status()->set_message(message);
    return encode(kPluginConn, stream, MessageType::response, response.SerializeAsString());
}

template <typename T>
Result<T> parse(const std::string& bytes, std::string_view method) {
    T message;
    if (!message.ParseFromString(bytes)) return fail("NRI: a malformed " + std::string(method) + " request");
    return message;
}

// What is kept back from the runtime's time for the answer's way back.
constexpr std::chrono::milliseconds kReplyMargin{500};
// A call without a timeout gets containerd's default.
constexpr std::chrono::seconds kDefaultCallTimeout{2};

}  // namespace

Clock::time_point callDeadline(std::int64_t timeoutNano, Clock::time_point arrived) {
    const std::chrono::nanoseconds given =
        timeoutNano > 0 ? std::chrono::nanoseconds(timeoutNano) : std::chrono::nanoseconds(kDefaultCallTimeout);
    return arrived + given - std::min<std::chrono::nanoseconds>(kReplyMargin, given / 4);
}

Result<std::string> Session::start() {
    if (index_.size() != 2 || !std::isdigit(static_cast<unsigned char>(index_[0])) ||
        !std::isdigit(static_cast<unsigned char>(index_[1])))
        return fail("NRI: the plugin index " + quote(index_) + " is not two digits");
    api::RegisterPluginRequest registration;
    registration.set_plugin_name(name_);
    registration.set_plugin_idx(index_);
    ttrpcapi::Request request;
    request.set_service(std::string(kRuntimeService));
    request.set_method("RegisterPlugin");
    registration.SerializeToString(request.mutable_payload());
    return encode(kRuntimeConn, kRegisterStream, MessageType::request, request.SerializeAsString());
}

Result<std::string> Session::feed(std::span<const unsigned char> bytes, Clock::time_point now) {
    auto messages = decoder_.feed(bytes);
    if (!messages) return propagate(messages);
    std::string out;
    for (const Message& m : *messages) {
        if (m.conn == kRuntimeConn) {
            if (auto ok = acknowledge(m); !ok) return propagate(ok);
            continue;
        }
        auto answered = answer(m, now);
        if (!answered) return propagate(answered);
        out += *answered;
    }
    return out;
}

// The runtime's answer to RegisterPlugin, the only call we make.
Result<void> Session::acknowledge(const Message& m) {
    if (m.type != static_cast<std::uint8_t>(MessageType::response) || m.stream != kRegisterStream || registered_)
        return fail("NRI: an unexpected message from the runtime on connection 2");
    ttrpcapi::Response response;
    if (!response.ParseFromString(m.payload)) return fail("NRI: a malformed RegisterPlugin reply");
    if (response.has_status() && response.status().code() != 0)
        return fail("NRI: the runtime refused the registration: " + response.status().message());
    registered_ = true;
    return {};
}

Result<std::string> Session::answer(const Message& m, Clock::time_point now) {
    // ttrpc: the caller numbers its calls 1, 3, 5, ...; anything else means
    // the streams are out of step.
    if (m.type != static_cast<std::uint8_t>(MessageType::request) || m.stream % 2 == 0 || m.stream <= lastStream_)
        return fail("NRI: an unexpected message from the runtime on connection 1 (type " + std::to_string(m.type) +
                    ", stream " + std::to_string(m.stream) + ")");
    lastStream_ = m.stream;
    ttrpcapi::Request request;
    if (!request.ParseFromString(m.payload)) return fail("NRI: a malformed ttrpc request");
    const std::string& method = request.method();
    if (request.service() != kPluginService)
        return refuse(m.stream, kUnimplemented, "service " + request.service());

    // A payload that does not parse is refused on its stream: the
    // connection, and the plugin, go on.
    const auto malformed = [&](const auto& parsed) {
        return refuse(m.stream, kInvalidArgument, parsed.error().message);
    };
    const Clock::time_point deadline = callDeadline(request.timeout_nano(), now);
    if (method == "Configure") {
        if (auto configure = parse<api::ConfigureRequest>(request.payload(), method); !configure)
            return malformed(configure);
        api::ConfigureResponse response;
        response.set_events(handler_.events() | eventBit(api::CREATE_CONTAINER));
        return reply(m.stream, response);
    }
    if (method == "Synchronize") {
        auto sync = parse<api::SynchronizeRequest>(request.payload(), method);
        if (!sync) return malformed(sync);
        handler_.synchronize(*sync);
        synchronized_ = true;
        return reply(m.stream, api::SynchronizeResponse());
    }
    if (method == "CreateContainer") {
        auto create = parse<api::CreateContainerRequest>(request.payload(), method);
        if (!create) return malformed(create);
        auto adjust = handler_.createContainer(*create, deadline);
        if (!adjust) return refuse(m.stream, kPermissionDenied, "secretshim: " + adjust.error().message);
        api::CreateContainerResponse response;
        *response.mutable_adjust() = std::move(*adjust);
        return reply(m.stream, response);
    }
    if (method == "StopContainer") {
        auto stop = parse<api::StopContainerRequest>(request.payload(), method);
        if (!stop) return malformed(stop);
        handler_.stopContainer(*stop, deadline);
        return reply(m.stream, api::StopContainerResponse());
    }
    if (method == "StateChange") {
        auto event = parse<api::StateChangeEvent>(request.payload(), method);
        if (!event) return malformed(event);
        handler_.stateChange(*event, deadline);
        return reply(m.stream, api::Empty());
    }
    if (method == "Shutdown") return reply(m.stream, api::Empty());
    return refuse(m.stream, kUnimplemented, "method " + method);
}

}  // namespace secretshim::plugin::nri
