// Fuzzes the agent's request handling: one connection's SOCK_SEQPACKET
// messages (the input split at NUL bytes, which no JSON text contains),
// each decoded by decodeJson() (what receiveJson() does after the read) and
// fed to the agent's real Session (plugin/agent/session.cpp, the same
// socket-free state machine the agent's connections run) over a real Agent
// on a throwaway state directory: the store, the annotation parser and, as
// root, the tmpfs view are the real code too. The fuzzer plays the client
// only: it attaches the fds a real client sends (a pidfd with "create", a
// sealed memfd with "secret.create") and drops what receiveFds() would.
//
// Every reply must be an object with a boolean "ok", a failure must carry a
// one-line "error", and the reply must survive the wire (dump, then parse).
// No exception may leave a handler: the agent's main loop treats that as an
// internal error and the client is left waiting.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/fd_passing.hpp"
#include "platform/linux/mount_api.hpp"
#include "plugin/agent/agent.hpp"
#include "plugin/agent/local_source.hpp"
#include "plugin/agent/session.hpp"
#include "plugin/protocol/channel.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;
using platform::UniqueFd;

namespace {

constexpr std::size_t kMaxMessages = 8;
// The one secret in the fuzzing store. Its value is a fixed test string.
const std::string kSecretName = "fuzzsecret";
constexpr std::string_view kSecretValue = "fuzz-value-not-a-secret\n";

struct Fixture {
    std::string stateDir;
    boost::asio::io_context io;
    std::unique_ptr<LocalSource> source;  // the agent's store and grants
    std::unique_ptr<Agent> agent;
};

Fixture* fixture = nullptr;

mountfs::Bytes bytes(std::string_view s) { return {reinterpret_cast<const unsigned char*>(s.data()), s.size()}; }

void removeStateDir() {
    if (!fixture) return;
    std::error_code ec;
    std::filesystem::remove_all(fixture->stateDir, ec);
}


// What sendJson() and the peer's receiveJson() do to a reply.
void checkReply(const json& reply) {
    FUZZ_CHECK(reply.is_object());
    const auto ok = reply.find("ok");
    FUZZ_CHECK(ok != reply.end() && ok->is_boolean());
    if (!ok->get<bool>()) {
        const auto error = reply.find("error");
        FUZZ_CHECK(error != reply.end() && error->is_string());
        FUZZ_CHECK_MSG(fuzz::isOneLine(error->get_ref<const std::string&>()), error->get_ref<const std::string&>());
    }
    // What the agent sends (invalid UTF-8 replaced, never thrown on) must
    // parse back to an answer with the same verdict.
    const std::string text = encodeJson(reply);
    const json back = json::parse(text, nullptr, false);
    FUZZ_CHECK(!back.is_discarded() && back.is_object() && back.size() == reply.size() &&
               back.find("ok") != back.end() && back["ok"] == reply["ok"]);
}

// A successful create: one mount per single-file target plus one for the
// /run/secrets directory if any target lies there, each with an fd.
void checkCreateReply(const json& request, const Agent::PendingTask& task, const json& mounts,
                      const std::vector<int>& fds) {
    FUZZ_CHECK(mounts.size() == fds.size());
    FUZZ_CHECK(task.record.id == stringField(request, "id") && !task.record.id.empty());
    FUZZ_CHECK(task.record.bundle == stringField(request, "bundle"));
    FUZZ_CHECK(task.record.secrets == stringField(request, "secrets"));
    // Granted only to who the request said it is, and only what a rule allows.
    const auto who = WorkloadIdentity::fromJson(request["identity"]);
    FUZZ_CHECK(who.has_value() && task.record.identity == *who);
    FUZZ_CHECK(task.record.pid == ::getpid());
    const auto refs = mountfs::parseSecretRefs(task.record.secrets);
    FUZZ_CHECK(refs.has_value());
    const std::string prefix = std::string(mountfs::kSecretsDir) + "/";
    std::size_t singleFiles = 0;
    bool directory = false;
    for (const auto& ref : *refs) {
        FUZZ_CHECK(std::find(task.secrets.begin(), task.secrets.end(), ref.source) != task.secrets.end());
        if (ref.target.rfind(prefix, 0) == 0) {
            directory = true;
            continue;
        }
        ++singleFiles;
        FUZZ_CHECK_MSG(std::any_of(mounts.begin(), mounts.end(),
                                   [&](const json& m) { return m["target"] == ref.target && !m["directory"]; }),
                       ref.target);
    }
    FUZZ_CHECK(mounts.size() == singleFiles + (directory ? 1 : 0));
    // The reply must be sendable: sendFds() refuses more fds than SCM_MAX_FD,
    // and onCreate() then drops the hook without an answer.
    FUZZ_CHECK_MSG(fds.size() <= platform::kMaxPassedFds, std::to_string(fds.size()) + " mounts");
    FUZZ_CHECK(json({{"ok", true}, {"mounts", mounts}}).dump().size() <= kMaxMessage);
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        FUZZ_CHECK(::fcntl(fds[i], F_GETFD) >= 0);
        if (mounts[i]["directory"] == true) FUZZ_CHECK(mounts[i]["target"] == mountfs::kSecretsDir);
    }
}

// A sealed memfd holding the test value, as secretshimctl sends one.
UniqueFd valueMemfd() {
    UniqueFd mem(::memfd_create("fuzz-value", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    FUZZ_CHECK(mem.valid());
    FUZZ_CHECK(::write(mem.get(), kSecretValue.data(), kSecretValue.size()) ==
               static_cast<ssize_t>(kSecretValue.size()));
    FUZZ_CHECK(::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0);
    return mem;
}

// One client connection over a real Session. receive() returns false
// once the agent would have closed the socket.
class FuzzConnection {
public:
    explicit FuzzConnection(Agent& agent) : agent_(agent), session_(agent, std::nullopt) {}

    bool receive(const std::string& data) {
        // receiveFds(): an oversized message is truncated and dropped, an
        // empty one reads as the peer closing.
        Result<JsonMessage> message = data.size() > kMaxMessage || data.empty()
                                          ? Result<JsonMessage>(fail("connection closed"))
                                          : decodeJson(data, {});
        std::string op;
        TaskKey pendingKey;
        if (message) {
            op = opOf(message->body);
            // The fds the real clients send with these requests.
            if (op == op::create) {
                message->fds.emplace_back(platform::sysPidfdOpen(::getpid(), 0));
                FUZZ_CHECK(message->fds.back().valid());
            }
            if (op == op::secretCreate) message->fds.push_back(valueMemfd());
        }
        const json request = message ? message->body : json();
        const bool hadPending = session_.pending() != nullptr;
        if (hadPending) pendingKey = session_.pending()->record.key();

        const Session::Outcome out = session_.receive(std::move(message));
        if (!out.reply) {
            FUZZ_CHECK(out.fds.empty());
            return false;
        }
        checkReply(*out.reply);
        const bool ok = (*out.reply)["ok"] == true;
        if (op == op::create && ok) {
            FUZZ_CHECK(!hadPending && session_.pending() != nullptr && !out.close);
            FUZZ_CHECK(out.reply->contains("mounts"));
            checkCreateReply(request, *session_.pending(), (*out.reply)["mounts"], out.fds);
        } else {
            FUZZ_CHECK(out.fds.empty());
        }
        if (const auto report = AttachedRequest::fromJson(request); op == op::attached && hadPending && report && report->ok)
            started_.push_back(pendingKey);
        if (ok && op.rfind("secret.", 0) == 0 && op != op::secretLs && op != op::secretInspect) storeChanged_ = true;
        return !out.close;
    }

    // The connection closes: a pending view is flushed; tasks that were
    // started are released as their poststop hook would (by id and bundle:
    // a release by id alone flushes nothing when two tasks share the id).
    void close() {
        session_.abandon();
        for (const auto& key : started_)
            checkReply(agent_.handle(ReleaseRequest{key.id, key.bundle, ""}.toJson(), noFds_));
        started_.clear();
    }

    bool storeChanged() const { return storeChanged_; }

private:
    Agent& agent_;
    Session session_;
    std::vector<TaskKey> started_;
    std::vector<UniqueFd> noFds_;
    bool storeChanged_ = false;
};

// Puts the store back as it was: only the test secret, granted to root.
void resetStore() {
    LocalSource& source = *fixture->source;
    auto metas = source.list();
    FUZZ_CHECK(metas.has_value());
    const GrantRule root = *GrantRule::parse("root");
    bool present = false;
    for (const auto& m : *metas) {
        if (m.name == kSecretName)
            present = true;
        else
            FUZZ_CHECK(source.remove(m.name).has_value());
    }
    if (!present) FUZZ_CHECK(source.create(kSecretName, bytes(kSecretValue), {root}).has_value());
    const std::vector<GrantRule> rules = *source.rules(kSecretName);
    for (const auto& r : rules)
        if (!(r == root)) FUZZ_CHECK(source.revokeGrant(kSecretName, r).has_value());
    if (std::find(rules.begin(), rules.end(), root) == rules.end()) FUZZ_CHECK(source.addGrant(kSecretName, root).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // The agent logs a line per refused request; keep libFuzzer's output
    // readable unless asked (libFuzzer and the sanitizers keep the real stderr).
    fuzz::reportStream() = stderr;
    if (!std::getenv("SECRETSHIM_FUZZ_AGENT_LOG"))
        if (std::FILE* null = std::fopen("/dev/null", "w")) stderr = null;

    fixture = new Fixture;
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/secretshim-fuzz-agent-XXXXXX";
    FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr);
    fixture->stateDir = pattern;
    std::atexit(removeStateDir);

    AgentConfig config;
    config.stateDir = fixture->stateDir;
    config.socket = fixture->stateDir + "/agent.sock";  // never bound: the fuzzer calls the handlers
    std::vector<std::string> problems;
    auto source = LocalSource::open(config.stateDir, {}, problems);
    FUZZ_CHECK_MSG(source.has_value(), source ? std::string() : source.error().message);
    auto records = TaskRecords::open(config.stateDir);
    FUZZ_CHECK_MSG(records.has_value(), records ? std::string() : records.error().message);
    fixture->source = std::move(*source);
    fixture->agent = std::make_unique<Agent>(fixture->io, config, std::move(*records), fixture->source.get());
    resetStore();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    FuzzConnection connection(*fixture->agent);
    try {
        std::size_t start = 0;
        for (std::size_t n = 0; n < kMaxMessages && start <= input.size(); ++n) {
            const std::size_t end = std::min(input.find('\0', start), input.size());
            if (!connection.receive(std::string(input.substr(start, end - start)))) break;
            start = end + 1;
        }
        connection.close();
    } catch (const std::exception& e) {
        FUZZ_CHECK_MSG(false, std::string("exception escaped from a handler: ") + e.what());
    }
    // Run the handlers of cancelled exit watches, so none pile up.
    fixture->io.restart();
    fixture->io.poll();
    if (connection.storeChanged()) resetStore();
    return 0;
}
