#include "plugin/cluster/etcd_client.hpp"

#include <sys/socket.h>

// g++ 12 with -fsanitize=address warns "may be used uninitialized" inside
// Beast's own parser (boost::optional in basic_parser::content_length, Boost
// 1.74): a false positive in a header we do not own, and -Werror is on.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "plugin/cluster/base64.hpp"

namespace secretshim::cluster {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;
using Stream = beast::ssl_stream<beast::tcp_stream>;

namespace {

constexpr std::size_t kMaxBody = 64 << 20;
constexpr int kGrpcUnauthenticated = 16;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcDeadline = 4;

struct Endpoint {
    std::string host;
    std::string port;
    std::string text;
};

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

std::string sslError(const beast::error_code& ec) {
    std::string msg = ec.message();
    if (ec.category() == asio::error::get_ssl_category()) {
        char buf[256];
        ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
        msg = buf;
    }
    ERR_clear_error();
    return quote(msg).substr(1, quote(msg).size() - 2);
}

// Runs one asynchronous operation to completion: tcp_stream's deadline
// applies only to asynchronous operations.
template <class Start>
beast::error_code runOp(asio::io_context& io, Start start) {
    beast::error_code result = asio::error::would_block;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run();
    return result;
}

std::string asn1Time(const ASN1_TIME* t) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) return "?";
    std::string text = "?";
    if (ASN1_TIME_print(bio, t) == 1) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        if (n > 0) text.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
    return text;
}

// An expired (or not yet valid) client certificate: the members would
// refuse every handshake with a bare TLS alert, so say it here, by name.
Result<void> checkValidity(SSL_CTX* ctx, const std::string& file) {
    const X509* cert = SSL_CTX_get0_certificate(ctx);
    if (!cert) return {};
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        return fail("etcd: the client certificate " + quote(file) + " expired on " + asn1Time(X509_get0_notAfter(cert)));
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        return fail("etcd: the client certificate " + quote(file) + " is not valid before " +
                    asn1Time(X509_get0_notBefore(cert)));
    return {};
}

bool retryable(int grpcCode) { return grpcCode == kGrpcUnavailable || grpcCode == kGrpcDeadline; }

}  // namespace

struct EtcdClient::Impl {
    asio::io_context io;
    ssl::context ctx{ssl::context::tls_client};
    std::vector<Endpoint> endpoints;
    std::mutex mutex;  // preferred and token, shared with a watch thread
    std::size_t preferred = 0;
    std::string token;
    std::unique_ptr<Stream> conn;  // the unary connection, to endpoints[connIndex]
    std::size_t connIndex = 0;
    std::mutex watchMutex;
    int watchFd = -1;

    // A connected, verified TLS stream to endpoint i.
    Result<std::unique_ptr<Stream>> open(asio::io_context& ioc, std::size_t i, std::chrono::milliseconds timeout) {
        const Endpoint& e = endpoints[i];
        auto stream = std::make_unique<Stream>(ioc, ctx);
        beast::error_code ec;
        asio::ip::tcp::resolver resolver(ioc);
        const auto results = resolver.resolve(e.host, e.port, ec);
        if (ec) return fail("etcd " + e.text + ": cannot resolve: " + ec.message());
        beast::get_lowest_layer(*stream).expires_after(timeout);
        ec = runOp(ioc, [&](auto handler) { beast::get_lowest_layer(*stream).async_connect(results, handler); });
        if (ec) return failWith(ECONNREFUSED, "etcd " + e.text + ": cannot connect: " + ec.message());
        beast::error_code addrEc;
        (void)asio::ip::make_address(e.host, addrEc);
        if (addrEc && !SSL_set_tlsext_host_name(stream->native_handle(), e.host.c_str()))
            return fail("etcd " + e.text + ": cannot set the TLS server name");
        // OpenSSL checks the name during verification (an address against
        // the certificate's IP names, a host name against its DNS names), so
        // a certificate for another name fails with a verdict of its own,
        // said by name below rather than as a bare "certificate verify failed".
        X509_VERIFY_PARAM* param = SSL_get0_param(stream->native_handle());
        if ((addrEc ? X509_VERIFY_PARAM_set1_host(param, e.host.c_str(), e.host.size())
                    : X509_VERIFY_PARAM_set1_ip_asc(param, e.host.c_str())) != 1)
            return fail("etcd " + e.text + ": cannot set the name to verify");
        stream->set_verify_mode(ssl::verify_peer);
        beast::get_lowest_layer(*stream).expires_after(timeout);
        ec = runOp(ioc, [&](auto handler) { stream->async_handshake(ssl::stream_base::client, handler); });
        if (!ec) return stream;
        const long verdict = SSL_get_verify_result(stream->native_handle());
        if (verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            ERR_clear_error();
            return failWith(EPROTO, "etcd " + e.text + ": TLS handshake failed: the server's certificate does not name " +
                                        e.host + " (" + X509_verify_cert_error_string(verdict) + ")");
        }
        return failWith(EPROTO, "etcd " + e.text + ": TLS handshake failed: " + sslError(ec));
    }
};

EtcdClient::EtcdClient(EtcdSettings settings) : settings_(std::move(settings)), impl_(std::make_unique<Impl>()) {}
EtcdClient::~EtcdClient() = default;

Result<std::unique_ptr<EtcdClient>> EtcdClient::create(EtcdSettings settings) {
    if (settings.endpoints.empty()) return fail("etcd: no endpoints");
    std::unique_ptr<EtcdClient> client(new EtcdClient(std::move(settings)));
    Impl& impl = *client->impl_;
    for (const auto& url : client->settings_.endpoints) {
        auto e = parseEndpoint(url);
        if (!e) return propagate(e);
        impl.endpoints.push_back(std::move(*e));
    }
    const EtcdSettings& s = client->settings_;
    beast::error_code ec;
    impl.ctx.set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1);
    if (s.caFile.empty()) return fail("etcd: no CA certificate (ca)");
    impl.ctx.load_verify_file(s.caFile, ec);
    if (ec) return fail("etcd: cannot load the CA certificate " + quote(s.caFile) + ": " + sslError(ec));
    if (s.certFile.empty() || s.keyFile.empty()) return fail("etcd: a client certificate and key are needed (cert, key)");
    impl.ctx.use_certificate_chain_file(s.certFile, ec);
    if (ec) return fail("etcd: cannot load the client certificate " + quote(s.certFile) + ": " + sslError(ec));
    if (auto ok = checkValidity(impl.ctx.native_handle(), s.certFile); !ok) return propagate(ok);
    impl.ctx.use_private_key_file(s.keyFile, ssl::context::pem, ec);
    if (ec) {
        const std::string why = sslError(ec);
        if (why.find("mismatch") != std::string::npos)
            return fail("etcd: the client key " + quote(s.keyFile) + " does not match " + quote(s.certFile));
        return fail("etcd: cannot load the client key " + quote(s.keyFile) + ": " + why);
    }
    if (SSL_CTX_check_private_key(impl.ctx.native_handle()) != 1) {
        ERR_clear_error();
        return fail("etcd: the client key " + quote(s.keyFile) + " does not match " + quote(s.certFile));
    }
    return client;
}

std::string EtcdClient::endpoint() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->endpoints[impl_->preferred].text;
}

namespace {

struct Answer {
    unsigned status = 0;
    std::string body;
};

// One POST on an open stream.
Result<Answer> post(asio::io_context& io, Stream& stream, const Endpoint& e, const std::string& path,
                    const std::string& body, const std::string& token, std::chrono::milliseconds timeout) {
    http::request<http::string_body> req{http::verb::post, path, 11};
    req.set(http::field::host, e.host);
    req.set(http::field::content_type, "application/json");
    // An explicit Accept: without it the gateway authenticates the request
    // as the member's own certificate CN (docs/platform-notes.md).
    req.set(http::field::accept, "application/json");
    // Fail at once without a leader instead of waiting 7 s (docs/platform-notes.md).
    req.set("Grpc-Metadata-Hasleader", "true");
    if (!token.empty()) req.set(http::field::authorization, token);
    req.body() = body;
    req.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(timeout);
    auto ec = runOp(io, [&](auto handler) { http::async_write(stream, req, handler); });
    if (ec) return failWith(EPIPE, "etcd " + e.text + ": sending failed: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    beast::get_lowest_layer(stream).expires_after(timeout);
    ec = runOp(io, [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
    if (ec == beast::error::timeout) return failWith(ETIMEDOUT, "etcd " + e.text + ": no answer in time");
    if (ec) return failWith(EPIPE, "etcd " + e.text + ": reading the answer failed: " + ec.message());
    Answer a;
    a.status = parser.get().result_int();
    a.body = std::move(parser.get().body());
    if (!parser.get().keep_alive()) {
        beast::error_code ignored;
        beast::get_lowest_layer(stream).socket().close(ignored);
    }
    return a;
}

}  // namespace

Result<std::string> EtcdClient::call(const std::string& path, const json& body) {
    Impl& impl = *impl_;
    const std::string text = body.dump();
    Error last{.message = "etcd: no endpoint answered"};
    bool reauthenticated = false;
    const std::size_t n = impl.endpoints.size();
    for (std::size_t attempt = 0; attempt < n + 1; ++attempt) {
        std::size_t index;
        std::string token;
        {
            std::lock_guard lock(impl.mutex);
            index = impl.preferred;
            token = impl.token;
        }
        const Endpoint& e = impl.endpoints[index];
        auto next = [&] {
            impl.conn.reset();
            std::lock_guard lock(impl.mutex);
            if (impl.preferred == index) impl.preferred = (index + 1) % n;
        };
        // TLS 1.3: a member that refuses our certificate says so only after
        // our side of the handshake is done, by an alert and a closed
        // connection that the first request runs into.
        bool fresh = false;
        auto refusedCert = [&](const Error& why) {
            if (!fresh || why.code != EPIPE) return why;
            const auto colon = why.message.rfind(": ");
            const std::string cause = colon == std::string::npos ? why.message : why.message.substr(colon + 2);
            return errorWith(EPIPE, "etcd " + e.text + ": the member closed the connection right after the TLS handshake (" +
                                        cause + "): does it trust the client certificate " + quote(settings_.certFile) + "?");
        };
        if (!impl.conn || impl.connIndex != index || !beast::get_lowest_layer(*impl.conn).socket().is_open()) {
            auto stream = impl.open(impl.io, index, settings_.timeout);
            if (!stream) {
                last = stream.error();
                next();
                continue;
            }
            impl.conn = std::move(*stream);
            impl.connIndex = index;
            fresh = true;
        }
        if (token.empty() && !settings_.user.empty()) {
            auto auth = post(impl.io, *impl.conn, e, "/v3/auth/authenticate",
                             json{{"name", settings_.user}, {"password", settings_.password}}.dump(), "",
                             settings_.timeout);
            if (!auth) {
                last = refusedCert(auth.error());
                next();
                continue;
            }
            fresh = false;
            if (auth->status != 200) {
                auto g = decodeGatewayError(auth->body);
                if (g && retryable(g->code)) {
                    last = errorWith(EAGAIN, "etcd " + e.text + ": " + g->message);
                    next();
                    continue;
                }
                return failWith(EACCES, "etcd " + e.text + ": authentication as " + quote(settings_.user) +
                                            " failed: " + (g ? g->message : "HTTP " + std::to_string(auth->status)));
            }
            auto t = decodeAuthToken(auth->body);
            if (!t) return failWith(EPROTO, "etcd " + e.text + ": " + t.error().message);
            token = *t;
            std::lock_guard lock(impl.mutex);
            impl.token = token;
        }
        auto answer = post(impl.io, *impl.conn, e, path, text, token, settings_.timeout);
        if (!answer) {
            last = refusedCert(answer.error());
            next();
            continue;
        }
        if (answer->status == 200) return std::move(answer->body);
        auto g = decodeGatewayError(answer->body);
        const std::string why = g ? g->message : "HTTP " + std::to_string(answer->status);
        if (g && g->code == kGrpcUnauthenticated && !reauthenticated && !settings_.user.empty()) {
            // The token expired (simple tokens live 5 minutes idle).
            reauthenticated = true;
            std::lock_guard lock(impl.mutex);
            impl.token.clear();
            --attempt;
            continue;
        }
        if ((g && retryable(g->code)) || answer->status == 503) {
            last = errorWith(EAGAIN, "etcd " + e.text + ": " + why);
            next();
            continue;
        }
        return failWith(g && g->code == 7 ? EACCES : EPROTO, "etcd " + e.text + ": " + why);
    }
    return failWith(last.code ? last.code : EHOSTUNREACH,
                    "etcd unreachable (" + std::to_string(n) + " endpoints): " + last.message);
}

Result<RangeResult> EtcdClient::range(const std::string& key, bool prefix, std::int64_t revision) {
    json body = {{"key", base64Encode(key)}};
    if (prefix) body["range_end"] = base64Encode(prefixEnd(key));
    if (revision > 0) body["revision"] = std::to_string(revision);
    auto answer = call("/v3/kv/range", body);
    if (!answer) return propagate(answer);
    auto r = decodeRange(*answer);
    if (!r) return propagate(r, "etcd range " + quote(key));
    return r;
}

Result<WriteResult> EtcdClient::put(const std::string& key, const std::string& value) {
    auto answer = call("/v3/kv/put", {{"key", base64Encode(key)}, {"value", base64Encode(value)}});
    if (!answer) return propagate(answer);
    return decodeWrite(*answer);
}

Result<WriteResult> EtcdClient::remove(const std::string& key, bool prefix) {
    json body = {{"key", base64Encode(key)}};
    if (prefix) body["range_end"] = base64Encode(prefixEnd(key));
    auto answer = call("/v3/kv/deleterange", body);
    if (!answer) return propagate(answer);
    return decodeWrite(*answer);
}

Result<WriteResult> EtcdClient::txn(const json& body) {
    auto answer = call("/v3/kv/txn", body);
    if (!answer) return propagate(answer);
    return decodeWrite(*answer);
}

Result<void> EtcdClient::compact(std::int64_t revision) {
    auto answer = call("/v3/kv/compaction", {{"revision", std::to_string(revision)}, {"physical", true}});
    if (!answer) return propagate(answer);
    return {};
}

void EtcdClient::interruptWatch() {
    std::lock_guard lock(impl_->watchMutex);
    if (impl_->watchFd >= 0) ::shutdown(impl_->watchFd, SHUT_RDWR);
}

WatchEnd EtcdClient::watch(const std::string& prefix, std::int64_t startRevision,
                           const std::function<void(const WatchMessage&)>& onMessage, const std::atomic<bool>& stop) {
    Impl& impl = *impl_;
    const std::size_t n = impl.endpoints.size();
    std::size_t index;
    {
        std::lock_guard lock(impl.mutex);
        index = impl.preferred;
    }
    WatchEnd end;
    // `why` already names the endpoint.
    auto broken = [&](WatchEnd::Reason reason, const std::string& why) {
        end.reason = reason;
        end.message = why;
        std::lock_guard lock(impl.mutex);
        if (impl.preferred == index) impl.preferred = (index + 1) % n;
        return end;
    };
    // A token first, through the unary path (it fails over by itself).
    bool needToken;
    {
        std::lock_guard lock(impl.mutex);
        needToken = impl.token.empty() && !settings_.user.empty();
    }
    if (needToken) {
        auto ok = call("/v3/maintenance/status", json::object());  // authenticates first
        if (!ok && ok.error().code == EACCES) {
            end.reason = WatchEnd::Reason::refused;
            end.message = ok.error().message;
            return end;
        }
        std::lock_guard lock(impl.mutex);
        index = impl.preferred;
    }
    const Endpoint& ep = impl.endpoints[index];
    asio::io_context io;
    auto stream = impl.open(io, index, settings_.timeout);
    if (!stream) return broken(WatchEnd::Reason::broken, stream.error().message);
    const std::string at = "etcd " + ep.text + ": ";
    {
        std::lock_guard lock(impl.watchMutex);
        impl.watchFd = beast::get_lowest_layer(**stream).socket().native_handle();
    }
    struct ClearFd {
        Impl& impl;
        ~ClearFd() {
            std::lock_guard lock(impl.watchMutex);
            impl.watchFd = -1;
        }
    } clearFd{impl};

    std::string token;
    {
        std::lock_guard lock(impl.mutex);
        token = impl.token;
    }
    json create = {{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixEnd(prefix))},
                   {"progress_notify", true}};
    if (startRevision > 0) create["start_revision"] = std::to_string(startRevision);
    http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
    req.set(http::field::host, ep.host);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json");
    // A member that loses its leader cancels the watch instead of leaving
    // it open and stale.
    req.set("Grpc-Metadata-Hasleader", "true");
    if (!token.empty()) req.set(http::field::authorization, token);
    req.body() = json{{"create_request", create}}.dump();
    req.prepare_payload();
    beast::get_lowest_layer(**stream).expires_after(settings_.timeout);
    auto ec = runOp(io, [&](auto handler) { http::async_write(**stream, req, handler); });
    if (ec) return broken(WatchEnd::Reason::broken, at + "sending the watch failed: " + ec.message());

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    beast::get_lowest_layer(**stream).expires_after(settings_.timeout);
    ec = runOp(io, [&](auto handler) { http::async_read_header(**stream, buffer, parser, handler); });
    if (ec) return broken(WatchEnd::Reason::broken, at + "the watch got no answer: " + ec.message());
    if (parser.get().result_int() != 200) {
        if (parser.get().result_int() == 401 || parser.get().result_int() == 403) {
            std::lock_guard lock(impl.mutex);
            impl.token.clear();
        }
        return broken(WatchEnd::Reason::broken, at + "the watch was refused: HTTP " + std::to_string(parser.get().result_int()));
    }
    LineSplitter lines;
    char chunk[16384];
    bool created = false;
    while (!stop.load()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        // The member sends a progress notification every interval: silence
        // longer than that means a hung member (a SIGSTOPped one keeps the
        // TCP connection open).
        beast::get_lowest_layer(**stream).expires_after(settings_.watchSilence);
        ec = runOp(io, [&](auto handler) { http::async_read_some(**stream, buffer, parser, handler); });
        if (ec == http::error::need_buffer) ec = {};
        if (stop.load()) break;
        if (ec == beast::error::timeout)
            return broken(WatchEnd::Reason::silent,
                          at + "the watch was silent for " + std::to_string(settings_.watchSilence.count()) +
                              " ms (member hung?)");
        const std::size_t got = sizeof chunk - parser.get().body().size;
        if (!lines.feed(std::string_view(chunk, got))) return broken(WatchEnd::Reason::broken, at + "a watch message is too large");
        for (auto line = lines.next(); line; line = lines.next()) {
            if (line->empty()) continue;
            auto message = decodeWatchLine(*line);
            if (!message) {
                if (message.error().code == EPROTO) {  // e.g. an expired token: get a new one
                    std::lock_guard lock(impl.mutex);
                    impl.token.clear();
                }
                return broken(WatchEnd::Reason::broken, at + message.error().message);
            }
            if (message->canceled) {
                if (message->compactRevision > 0) {
                    end.reason = WatchEnd::Reason::compacted;
                    end.compactRevision = message->compactRevision;
                    end.message = "etcd " + ep.text + ": revision " + std::to_string(startRevision) +
                                  " was compacted (oldest " + std::to_string(message->compactRevision) + ")";
                    return end;
                }
                return broken(WatchEnd::Reason::broken, at + "the watch was canceled: " + quote(message->cancelReason));
            }
            created = created || message->created;
            onMessage(*message);
        }
        if (ec || parser.is_done())
            return broken(WatchEnd::Reason::broken,
                          std::string("the watch stream ended") + (ec ? ": " + ec.message() : std::string()));
    }
    (void)created;
    end.reason = WatchEnd::Reason::stopped;
    end.message = "stopped";
    return end;
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
