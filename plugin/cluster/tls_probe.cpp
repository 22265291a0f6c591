#include "plugin/cluster/tls_probe.hpp"

// g++ 12 with -fsanitize=address warns "may be used uninitialized" inside
// Beast's headers (Boost 1.74): a false positive in code we do not own, and
// -Werror is on.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace secretshim::cluster {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
using Stream = beast::ssl_stream<beast::tcp_stream>;

namespace {

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

}  // namespace

struct TlsProbe::Impl {
    ssl::context ctx{ssl::context::tls_client};
    std::string certFile;
};

TlsProbe::TlsProbe() = default;
TlsProbe::~TlsProbe() = default;
TlsProbe::TlsProbe(TlsProbe&&) noexcept = default;
TlsProbe& TlsProbe::operator=(TlsProbe&&) noexcept = default;

Result<TlsProbe> TlsProbe::create(const std::string& caFile, const std::string& certFile, const std::string& keyFile) {
    TlsProbe probe;
    probe.impl_ = std::make_unique<Impl>();
    ssl::context& ctx = probe.impl_->ctx;
    probe.impl_->certFile = certFile;
    beast::error_code ec;
    ctx.set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (caFile.empty()) return fail("etcd: no CA certificate (ca)");
    ctx.load_verify_file(caFile, ec);
    if (ec) return fail("etcd: cannot load the CA certificate " + quote(caFile) + ": " + sslError(ec));
    if (certFile.empty() || keyFile.empty()) return fail("etcd: a client certificate and key are needed (cert, key)");
    ctx.use_certificate_chain_file(certFile, ec);
    if (ec) return fail("etcd: cannot load the client certificate " + quote(certFile) + ": " + sslError(ec));
    if (auto ok = checkValidity(ctx.native_handle(), certFile); !ok) return propagate(ok);
    ctx.use_private_key_file(keyFile, ssl::context::pem, ec);
    if (ec) {
        const std::string why = sslError(ec);
        if (why.find("mismatch") != std::string::npos)
            return fail("etcd: the client key " + quote(keyFile) + " does not match " + quote(certFile));
        return fail("etcd: cannot load the client key " + quote(keyFile) + ": " + why);
    }
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        ERR_clear_error();
        return fail("etcd: the client key " + quote(keyFile) + " does not match " + quote(certFile));
    }
    return probe;
}

std::optional<Error> TlsProbe::diagnose(const Endpoint& e, std::chrono::milliseconds timeout) {
    asio::io_context io;
    Stream stream(io, impl_->ctx);
    beast::error_code ec;
    asio::ip::tcp::resolver resolver(io);
    const auto results = resolver.resolve(e.host, e.port, ec);
    if (ec) return errorWith(EHOSTUNREACH, "etcd " + e.text + ": cannot resolve: " + ec.message());
    beast::get_lowest_layer(stream).expires_after(timeout);
    ec = runOp(io, [&](auto handler) { beast::get_lowest_layer(stream).async_connect(results, handler); });
    if (ec) return std::nullopt;  // down, not refused: gRPC's own message says as much
    beast::error_code addrEc;
    (void)asio::ip::make_address(e.host, addrEc);
    if (addrEc && !SSL_set_tlsext_host_name(stream.native_handle(), e.host.c_str()))
        return errorWith(EPROTO, "etcd " + e.text + ": cannot set the TLS server name");
    // OpenSSL checks the name during verification (an address against the
    // certificate's IP names, a host name against its DNS names), so a
    // certificate for another name fails with a verdict of its own, said by
    // name below rather than as a bare "certificate verify failed".
    X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
    if ((addrEc ? X509_VERIFY_PARAM_set1_host(param, e.host.c_str(), e.host.size())
                : X509_VERIFY_PARAM_set1_ip_asc(param, e.host.c_str())) != 1)
        return errorWith(EPROTO, "etcd " + e.text + ": cannot set the name to verify");
    stream.set_verify_mode(ssl::verify_peer);
    beast::get_lowest_layer(stream).expires_after(timeout);
    ec = runOp(io, [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); });
    if (ec) {
        const long verdict = SSL_get_verify_result(stream.native_handle());
        if (verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            ERR_clear_error();
            return errorWith(EPROTO, "etcd " + e.text + ": TLS handshake failed: the server's certificate does not name " +
                                         e.host + " (" + X509_verify_cert_error_string(verdict) + ")");
        }
        if (ec == beast::error::timeout) return std::nullopt;  // hung, not refused
        return errorWith(EPROTO, "etcd " + e.text + ": TLS handshake failed: " + sslError(ec));
    }
    // TLS 1.3: a member that refuses our certificate says so only after our
    // side of the handshake is done, with an alert and a closed connection.
    // One that took it waits for our first bytes.
    char byte;
    beast::get_lowest_layer(stream).expires_after(std::min(timeout, std::chrono::milliseconds(500)));
    ec = runOp(io, [&](auto handler) { stream.async_read_some(asio::buffer(&byte, 1), handler); });
    if (!ec || ec == beast::error::timeout) return std::nullopt;
    return errorWith(EPIPE, "etcd " + e.text + ": the member closed the connection right after the TLS handshake (" +
                                sslError(ec) + "): does it trust the client certificate " + quote(impl_->certFile) + "?");
}

}  // namespace secretshim::cluster
