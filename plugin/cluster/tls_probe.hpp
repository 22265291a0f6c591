// What gRPC cannot say in words: why a TLS connection to an etcd member
// fails. gRPC reports a refused CA, a certificate for another name or a
// client certificate the members do not trust as one "unavailable" among
// others; the etcd client asks this probe, which makes the same handshake
// with OpenSSL, when no member answered. It also checks the client's own
// material up front (readable, unexpired, the key matching the certificate).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::cluster {

struct Endpoint {
    std::string host;
    std::string port;
    std::string text;  // as configured: https://HOST:PORT
};

class TlsProbe {
public:
    TlsProbe();
    ~TlsProbe();
    TlsProbe(TlsProbe&&) noexcept;
    TlsProbe& operator=(TlsProbe&&) noexcept;

    // Loads the CA, the client certificate and its key; one line naming the
    // file when one is missing, unreadable, expired or mismatched.
    static Result<TlsProbe> create(const std::string& caFile, const std::string& certFile, const std::string& keyFile);

    // Why a TLS session with `e` cannot be had, in one line; nothing when a
    // handshake succeeds and the member keeps the connection (then the
    // failure is not TLS's).
    std::optional<Error> diagnose(const Endpoint& e, std::chrono::milliseconds timeout);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace secretshim::cluster
