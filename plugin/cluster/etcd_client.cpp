#include "plugin/cluster/etcd_client.hpp"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <fstream>
#include <sstream>
#include <thread>

#include "etcd.grpc.pb.h"
#include "plugin/cluster/base64.hpp"
#include "plugin/cluster/tls_probe.hpp"

namespace secretshim::cluster {

namespace pb = etcdserverpb;
using nlohmann::json;

namespace {

// As much as the JSON gateway took: a full read of a large cluster's keys
// comes in one response.
constexpr int kMaxMessage = 64 << 20;

Result<Endpoint> parseEndpoint(const std::string& url) {
    constexpr std::string_view scheme = "https://";
    if (url.compare(0, scheme.size(), scheme) != 0)
        return fail("etcd endpoint " + quote(url) + ": expected https://HOST:PORT (TLS only)");
    std::string rest = url.substr(scheme.size());
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
        return fail("etcd endpoint " + quote(url) + ": expected https://HOST:PORT");
    Endpoint e{rest.substr(0, colon), rest.substr(colon + 1), url};
    if (e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
    if (e.port.find_first_not_of("0123456789") != std::string::npos || e.port.size() > 5 || std::stoi(e.port) > 65535 ||
        e.host.find_first_of("/@ ") != std::string::npos)
        return fail("etcd endpoint " + quote(url) + ": expected https://HOST:PORT");
    return e;
}

Result<std::string> readPem(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return failErrno("etcd: cannot read the " + what + " " + quote(path));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

bool retryable(grpc::StatusCode code) {
    return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// An answer, or etcd's refusal that says `tolerated`: what is to be made is
// there already, what is to be deleted is gone already.
template <class T>
bool okOr(const Result<T>& r, std::string_view tolerated) {
    return r || r.error().message.find(tolerated) != std::string::npos;
}

// gRPC's message, on one line.
std::string said(const grpc::Status& status) {
    std::string m = status.error_message();
    for (char& c : m)
        if (c == '\n' || c == '\r') c = ' ';
    return m.size() > 300 ? m.substr(0, 300) + "..." : m;
}

}  // namespace

struct EtcdClient::Impl {
    explicit Impl(const EtcdSettings& s) : settings(s) {}

    template <class Service, class Request, class Response>
    Result<Response> call(grpc::Status (Service::Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                          const Request& request);

    const EtcdSettings& settings;
    std::vector<Endpoint> endpoints;
    std::vector<std::shared_ptr<grpc::Channel>> channels;  // one per endpoint
    TlsProbe probe;
    std::mutex mutex;  // preferred, shared with a watch thread
    std::size_t preferred = 0;
    std::mutex watchMutex;
    grpc::ClientContext* watch = nullptr;

    void prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
        if (timeout.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + timeout);
        // Refused at once by a member without a leader, instead of waiting
        // for one (etcd's "hasleader" metadata); a watch is canceled when
        // its member loses the leader rather than left open and stale.
        ctx.AddMetadata("hasleader", "true");
    }
};

EtcdClient::EtcdClient(EtcdSettings settings)
    : settings_(std::move(settings)), impl_(std::make_unique<Impl>(settings_)) {}
EtcdClient::~EtcdClient() = default;

Result<std::unique_ptr<EtcdClient>> EtcdClient::create(EtcdSettings settings) {
    if (settings.endpoints.empty()) return fail("etcd: no endpoints");
    // gRPC's own log lines (several per failed handshake, on stderr) are not
    // the agent's: every failure reaches the caller as one line of ours.
    static std::once_flag quiet;
    std::call_once(quiet, [] { gpr_set_log_function([](gpr_log_func_args*) {}); });
    std::unique_ptr<EtcdClient> client(new EtcdClient(std::move(settings)));
    Impl& impl = *client->impl_;
    const EtcdSettings& s = client->settings_;
    for (const auto& url : s.endpoints) {
        auto e = parseEndpoint(url);
        if (!e) return propagate(e);
        impl.endpoints.push_back(std::move(*e));
    }
    // The same checks as a handshake would make, said by name before any.
    auto probe = TlsProbe::create(s.caFile, s.certFile, s.keyFile);
    if (!probe) return propagate(probe);
    impl.probe = std::move(*probe);
    grpc::SslCredentialsOptions tls;
    auto ca = readPem(s.caFile, "CA certificate");
    auto cert = readPem(s.certFile, "client certificate");
    auto key = readPem(s.keyFile, "client key");
    for (const auto* r : {&ca, &cert, &key})
        if (!*r) return propagate(*r);
    tls.pem_root_certs = std::move(*ca);
    tls.pem_cert_chain = std::move(*cert);
    tls.pem_private_key = std::move(*key);
    const auto credentials = grpc::SslCredentials(tls);
    std::fill(tls.pem_private_key.begin(), tls.pem_private_key.end(), '\0');
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessage);
    // A member back after a restart is reached within a second, not after
    // gRPC's default backoff of up to two minutes. (Not the "min" backoff:
    // gRPC also takes it as the time a connection attempt may take, and a
    // member still starting needs more than 100 ms to finish a handshake.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1000);
    for (const Endpoint& e : impl.endpoints) {
        const std::string target = (e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host) + ":" + e.port;
        impl.channels.push_back(grpc::CreateCustomChannel(target, credentials, args));
    }
    return client;
}

std::string EtcdClient::endpoint() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->endpoints[impl_->preferred].text;
}

// One unary call, failed over along the endpoints. A member that is down,
// hung or without a leader is skipped; when none answered, the TLS probe
// says why in words where gRPC's own message would not (a CA, a name, a
// client certificate the members refuse).
template <class Service, class Request, class Response>
Result<Response> EtcdClient::Impl::call(
    grpc::Status (Service::Stub::*rpc)(grpc::ClientContext*, const Request&, Response*), const Request& request) {
    Impl& impl = *this;
    const std::size_t n = impl.endpoints.size();
    std::string last = "no endpoint answered";
    bool unconnected = false;
    int authRaces = 0;
    for (std::size_t attempt = 0; attempt < n;) {
        std::size_t index;
        {
            std::lock_guard lock(impl.mutex);
            index = impl.preferred;
        }
        const Endpoint& e = impl.endpoints[index];
        auto next = [&] {
            std::lock_guard lock(impl.mutex);
            if (impl.preferred == index) impl.preferred = (index + 1) % n;
        };
        grpc::ClientContext ctx;
        impl.prepare(ctx, settings.timeout);
        Response response;
        const auto stub = Service::NewStub(impl.channels[index]);
        const grpc::Status status = (stub.get()->*rpc)(&ctx, request, &response);
        if (status.ok()) return response;
        // etcd checks a request's user against the auth store as it was when
        // the request came in; another admin's change to users or roles in
        // between (a node add) refuses it unapplied: sent again, after a
        // pause that grows (several admins adding nodes at once keep
        // changing the store), it is checked against the store as it is.
        if (status.error_message() == "etcdserver: revision of auth store is old" && ++authRaces <= 20) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min(2 * authRaces, 40)));
            continue;  // the same endpoint
        }
        if (retryable(status.error_code())) {
            last = "etcd " + e.text + ": " + said(status);
            // No connection (not a member's own answer, nor a timeout: a
            // hung member would hang the probe's handshake too).
            unconnected = unconnected || (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
                                          status.error_message().rfind("etcdserver:", 0) != 0);
            next();
            ++attempt;
            continue;
        }
        const int code = status.error_code() == grpc::StatusCode::PERMISSION_DENIED ? EACCES : EPROTO;
        return failWith(code, "etcd " + e.text + ": " + said(status));
    }
    std::size_t index;
    {
        std::lock_guard lock(impl.mutex);
        index = impl.preferred;
    }
    // A handshake takes milliseconds; the probe gets a second at most.
    const auto probeTime = std::min(settings.timeout, std::chrono::milliseconds(1000));
    if (unconnected)
        if (auto why = impl.probe.diagnose(impl.endpoints[index], probeTime)) return failWith(why->code, why->message);
    return failWith(EHOSTUNREACH, "etcd unreachable (" + std::to_string(n) + " endpoints): " + last);
}

Result<RangeResult> EtcdClient::range(const std::string& key, bool prefix, std::int64_t revision) {
    pb::RangeRequest request;
    request.set_key(key);
    if (prefix) request.set_range_end(prefixEnd(key));
    if (revision > 0) request.set_revision(revision);
    auto r = impl_->call<pb::KV>(&pb::KV::Stub::Range, request);
    if (!r) return propagate(r);
    return decodeRange(*r);
}

Result<WriteResult> EtcdClient::put(const std::string& key, const std::string& value) {
    pb::PutRequest request;
    request.set_key(key);
    request.set_value(value);
    auto r = impl_->call<pb::KV>(&pb::KV::Stub::Put, request);
    if (!r) return propagate(r);
    WriteResult w;
    w.revision = r->header().revision();
    w.succeeded = true;
    return w;
}

Result<WriteResult> EtcdClient::remove(const std::string& key, bool prefix) {
    pb::DeleteRangeRequest request;
    request.set_key(key);
    if (prefix) request.set_range_end(prefixEnd(key));
    auto r = impl_->call<pb::KV>(&pb::KV::Stub::DeleteRange, request);
    if (!r) return propagate(r);
    WriteResult w;
    w.revision = r->header().revision();
    w.succeeded = true;
    w.deleted = r->deleted();
    return w;
}

Result<WriteResult> EtcdClient::txn(const json& body) {
    // The txn helpers below build etcd's JSON form of a TxnRequest (as its
    // gateway took it): protobuf's JSON mapping reads it as is.
    pb::TxnRequest request;
    const auto parsed = google::protobuf::util::JsonStringToMessage(body.dump(), &request);
    if (!parsed.ok()) return fail("etcd: a malformed transaction: " + std::string(parsed.message()));
    auto r = impl_->call<pb::KV>(&pb::KV::Stub::Txn, request);
    if (!r) return propagate(r);
    WriteResult w;
    w.revision = r->header().revision();
    w.succeeded = r->succeeded();
    for (const auto& op : r->responses()) {
        if (op.has_response_range()) w.ranges.push_back(decodeRange(op.response_range()));
        if (op.has_response_delete_range()) w.deleted += op.response_delete_range().deleted();
    }
    return w;
}

Result<void> EtcdClient::compact(std::int64_t revision) {
    pb::CompactionRequest request;
    request.set_revision(revision);
    request.set_physical(true);
    auto r = impl_->call<pb::KV>(&pb::KV::Stub::Compact, request);
    if (!r) return propagate(r);
    return {};
}

Result<void> EtcdClient::ensureReader(const std::string& user, const std::vector<std::string>& prefixes) {
    // etcd refuses to add what exists (FAILED_PRECONDITION, "... already
    // exists"); granting again what is granted is no error.
    pb::AuthRoleAddRequest role;
    role.set_name(user);
    if (auto r = impl_->call<pb::Auth>(&pb::Auth::Stub::RoleAdd, role); !okOr(r, "already exists")) return propagate(r);
    for (const auto& prefix : prefixes) {
        pb::AuthRoleGrantPermissionRequest grant;
        grant.set_name(user);
        grant.mutable_perm()->set_permtype(pb::Permission::READ);
        grant.mutable_perm()->set_key(prefix);
        grant.mutable_perm()->set_range_end(prefixEnd(prefix));
        if (auto r = impl_->call<pb::Auth>(&pb::Auth::Stub::RoleGrantPermission, grant); !r) return propagate(r);
    }
    pb::AuthUserAddRequest add;
    add.set_name(user);
    add.mutable_options()->set_no_password(true);
    if (auto r = impl_->call<pb::Auth>(&pb::Auth::Stub::UserAdd, add); !okOr(r, "already exists")) return propagate(r);
    pb::AuthUserGrantRoleRequest member;
    member.set_user(user);
    member.set_role(user);
    if (auto r = impl_->call<pb::Auth>(&pb::Auth::Stub::UserGrantRole, member); !r) return propagate(r);
    return {};
}

Result<void> EtcdClient::removeReader(const std::string& user) {
    // The user first: from then on its certificate reads nothing.
    pb::AuthUserDeleteRequest del;
    del.set_name(user);
    if (auto r = impl_->call<pb::Auth>(&pb::Auth::Stub::UserDelete, del); !okOr(r, "not found")) return propagate(r);
    pb::AuthRoleDeleteRequest role;
    role.set_role(user);
    if (auto r = impl_->call<pb::Auth>(&pb::Auth::Stub::RoleDelete, role); !okOr(r, "not found")) return propagate(r);
    return {};
}

void EtcdClient::interruptWatch() {
    std::lock_guard lock(impl_->watchMutex);
    if (impl_->watch) impl_->watch->TryCancel();
}

// The watch is a gRPC stream on one member. A member that hangs (a
// SIGSTOPped one keeps its TCP connection open) goes silent: after half the
// silence allowed, the watch asks for progress (etcd 3.4+ answers at once
// with its revision), and a member silent for all of it is left. No server
// flag is needed, and an idle watch costs one small message per probe.
WatchEnd EtcdClient::watch(const std::vector<std::string>& prefixes, std::int64_t startRevision,
                           const std::function<void(const WatchMessage&)>& onMessage, const std::atomic<bool>& stop) {
    Impl& impl = *impl_;
    const std::size_t n = impl.endpoints.size();
    std::size_t index;
    {
        std::lock_guard lock(impl.mutex);
        index = impl.preferred;
    }
    const std::string at = "etcd " + impl.endpoints[index].text + ": ";
    WatchEnd end;
    auto broken = [&](WatchEnd::Reason reason, const std::string& why) {
        end.reason = reason;
        end.message = why;
        std::lock_guard lock(impl.mutex);
        if (impl.preferred == index) impl.preferred = (index + 1) % n;
        return end;
    };

    grpc::ClientContext ctx;
    impl.prepare(ctx, std::chrono::milliseconds(0));
    {
        std::lock_guard lock(impl.watchMutex);
        impl.watch = &ctx;
    }
    struct Unregister {
        Impl& impl;
        ~Unregister() {
            std::lock_guard lock(impl.watchMutex);
            impl.watch = nullptr;
        }
    } unregister{impl};
    if (stop.load()) return {WatchEnd::Reason::stopped, 0, "stopped"};
    const auto stub = pb::Watch::NewStub(impl.channels[index]);
    auto stream = stub->Watch(&ctx);
    std::vector<pb::WatchRequest> creates(prefixes.size());
    for (std::size_t i = 0; i < prefixes.size(); ++i) {
        auto& create = *creates[i].mutable_create_request();
        create.set_key(prefixes[i]);
        create.set_range_end(prefixEnd(prefixes[i]));
        create.set_progress_notify(true);
        if (startRevision > 0) create.set_start_revision(startRevision);
    }

    // The prober: the only writer once the create request is sent. It
    // watches the clock from the start: a member that hangs in the TLS
    // handshake is as silent as one that hangs later.
    using Clock = std::chrono::steady_clock;
    std::atomic<Clock::rep> heard{Clock::now().time_since_epoch().count()};
    std::atomic<bool> silent{false}, opened{false};
    std::mutex wake;
    std::condition_variable woken;
    bool done = false;
    const auto silence = settings_.watchSilence;
    std::thread prober([&] {
        bool asked = false;
        std::unique_lock lock(wake);
        while (!done) {
            woken.wait_for(lock, silence / 4);
            if (done) break;
            const auto quiet = Clock::now() - Clock::time_point(Clock::duration(heard.load()));
            if (quiet >= silence) {
                silent = true;
                ctx.TryCancel();
                break;
            }
            if (quiet < silence / 2) {
                asked = false;
            } else if (!asked && opened.load()) {
                // Not under the lock: finish() must get it while a write waits.
                lock.unlock();
                pb::WatchRequest progress;
                progress.mutable_progress_request();
                asked = stream->Write(progress);
                lock.lock();
            }
        }
    });
    // Ends the prober, and the call: `cancel` when it may still be open
    // (else Finish() says how it ended).
    auto finish = [&](bool cancel) {
        {
            std::lock_guard lock(wake);
            done = true;
        }
        woken.notify_all();
        if (cancel) ctx.TryCancel();
        prober.join();
        return stream->Finish();
    };

    bool written = true;
    for (const auto& create : creates) written = written && stream->Write(create);
    if (!written) {
        const grpc::Status status = finish(true);
        if (stop.load()) return {WatchEnd::Reason::stopped, 0, "stopped"};
        if (silent.load())
            return broken(WatchEnd::Reason::silent,
                          at + "the watch was silent for " + std::to_string(silence.count()) + " ms (member hung?)");
        return broken(WatchEnd::Reason::broken, at + "the watch could not be opened: " + said(status));
    }
    opened = true;
    pb::WatchResponse response;
    while (stream->Read(&response)) {
        heard = Clock::now().time_since_epoch().count();
        WatchMessage message = decodeWatch(response);
        if (message.canceled) {
            finish(true);
            if (message.compactRevision > 0) {
                end.reason = WatchEnd::Reason::compacted;
                end.compactRevision = message.compactRevision;
                end.message = at + "revision " + std::to_string(startRevision) + " was compacted (oldest " +
                              std::to_string(message.compactRevision) + ")";
                return end;
            }
            return broken(WatchEnd::Reason::broken, at + "the watch was canceled: " + quote(message.cancelReason));
        }
        onMessage(message);
        if (stop.load()) break;
    }
    const grpc::Status status = finish(stop.load());
    if (stop.load()) return {WatchEnd::Reason::stopped, 0, "stopped"};
    if (silent.load())
        return broken(WatchEnd::Reason::silent,
                      at + "the watch was silent for " + std::to_string(silence.count()) + " ms (member hung?)");
    if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
        end.reason = WatchEnd::Reason::refused;
        end.message = at + "the watch was refused: " + said(status);
        return end;
    }
    return broken(WatchEnd::Reason::broken, at + "the watch stream ended: " + said(status));
}

std::string prefixEnd(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto& c = reinterpret_cast<unsigned char&>(end.back());
        if (c < 0xff) {
            ++c;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // the whole key space
}

json txnPut(const std::string& key, const std::string& value) {
    return {{"request_put", {{"key", base64Encode(key)}, {"value", base64Encode(value)}}}};
}

json txnDelete(const std::string& key, bool prefix) {
    json r = {{"key", base64Encode(key)}};
    if (prefix) r["range_end"] = base64Encode(prefixEnd(key));
    return {{"request_delete_range", r}};
}

json txnDeleteRange(const std::string& key, const std::string& end) {
    return {{"request_delete_range", {{"key", base64Encode(key)}, {"range_end", base64Encode(end)}}}};
}

json txnRange(const std::string& key, bool prefix) {
    json r = {{"key", base64Encode(key)}};
    if (prefix) r["range_end"] = base64Encode(prefixEnd(key));
    return {{"request_range", r}};
}

json txnAbsent(const std::string& key) {
    return {{"key", base64Encode(key)}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}};
}

json txnModRevision(const std::string& key, std::int64_t revision) {
    return {{"key", base64Encode(key)}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", std::to_string(revision)}};
}

json txnUnchangedSince(const std::string& prefix, std::int64_t revision) {
    return {{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixEnd(prefix))}, {"target", "MOD"},
            {"result", "LESS"}, {"mod_revision", std::to_string(revision + 1)}};
}

}  // namespace secretshim::cluster
