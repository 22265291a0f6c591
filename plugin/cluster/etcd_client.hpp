// A client of etcd v3's gRPC API (gRPC++, plugin/cluster/etcd.proto) over
// mutual TLS: the server is verified against the cluster's CA and by name,
// and the client presents its certificate, whose CN etcd takes as the user
// (--client-cert-auth): no password or token anywhere.
//
// Every request has a deadline; a request that fails in transport, or that
// a member answers "unavailable" (no leader), is retried on the next
// endpoint. The watch is a gRPC stream that asks its member for progress
// when it has been quiet: a member silent for longer than watchSilence is
// treated as hung. No server flag is needed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"
#include "plugin/cluster/etcd_decode.hpp"

namespace secretshim::cluster {

struct EtcdSettings {
    std::vector<std::string> endpoints;  // https://host:port
    std::string caFile;
    std::string certFile;
    std::string keyFile;
    std::chrono::milliseconds timeout{5000};       // per request
    // A watch quiet for half of this asks for progress; one silent for all
    // of it is left for the next member.
    std::chrono::milliseconds watchSilence{6000};
};

// Why a watch stream ended (the Error of watch() says it in words).
struct WatchEnd {
    enum class Reason { stopped, broken, silent, compacted, refused } reason = Reason::broken;
    std::int64_t compactRevision = 0;
    std::string message;
};

class EtcdClient {
public:
    // Checks the settings and loads the TLS material; does not connect.
    static Result<std::unique_ptr<EtcdClient>> create(EtcdSettings settings);
    ~EtcdClient();

    Result<RangeResult> range(const std::string& key, bool prefix, std::int64_t revision = 0);
    Result<WriteResult> put(const std::string& key, const std::string& value);
    Result<WriteResult> remove(const std::string& key, bool prefix = false);
    // A txn in etcd's JSON form: {"compare":[...],"success":[...],
    // "failure":[...]}, keys and values base64 (the txn helpers below).
    Result<WriteResult> txn(const nlohmann::json& body);
    Result<void> compact(std::int64_t revision);
    // Makes `user` an etcd user without a password (the client certificate
    // whose CN it is authenticates it) with a role of the same name that may
    // read the keys under `prefixes` and nothing else; keeps what exists.
    Result<void> ensureReader(const std::string& user, const std::vector<std::string>& prefixes);
    // Deletes that user and its role; what is gone already is no error.
    Result<void> removeReader(const std::string& user);

    // Watches the keys under `prefixes` from `startRevision` (one stream,
    // a watcher each), calling `onMessage` for each message (events,
    // progress) until the stream ends, `stop` turns true, or the member is
    // silent too long. Starts on the preferred endpoint; after a failure the
    // next call starts on the next one.
    WatchEnd watch(const std::vector<std::string>& prefixes, std::int64_t startRevision,
                   const std::function<void(const WatchMessage&)>& onMessage, const std::atomic<bool>& stop);
    // Ends a watch running in another thread (closes its socket).
    void interruptWatch();

    std::string endpoint() const;  // the preferred endpoint now
    const EtcdSettings& settings() const { return settings_; }

    struct Impl;

private:
    explicit EtcdClient(EtcdSettings settings);

    EtcdSettings settings_;
    std::unique_ptr<Impl> impl_;
};

// Txn building blocks (keys and values as raw bytes).
std::string prefixEnd(const std::string& prefix);
nlohmann::json txnPut(const std::string& key, const std::string& value);
nlohmann::json txnDelete(const std::string& key, bool prefix = false);
nlohmann::json txnDeleteRange(const std::string& key, const std::string& end);  // [key, end)
nlohmann::json txnRange(const std::string& key, bool prefix = false);
// compare: the key's create_revision == 0 (absent), or mod_revision == rev.
nlohmann::json txnAbsent(const std::string& key);
nlohmann::json txnModRevision(const std::string& key, std::int64_t revision);
// compare: no key under `prefix` was written after `revision` (a range
// compare, etcd 3.3+: every key in [prefix, prefixEnd) has mod_revision <
// revision + 1; true for an empty range). Deletes are not seen: guard the
// keys whose absence matters on their own.
nlohmann::json txnUnchangedSince(const std::string& prefix, std::int64_t revision);

}  // namespace secretshim::cluster
