#include "plugin/agent/agent.hpp"
#include "plugin/agent/log.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "plugin/identity/grant_rule.hpp"

#include "mountfs/secret_ref.hpp"
#include "mountfs/view_layout.hpp"
#include "platform/linux/fd_passing.hpp"
#include "platform/linux/id_map.hpp"
#include "platform/linux/mount_api.hpp"
#include "plugin/agent/local_source.hpp"
#include "plugin/agent/session.hpp"
#include "plugin/agent/task_list.hpp"
#include "plugin/protocol/channel.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

namespace asio = boost::asio;
using nlohmann::json;
using platform::UniqueFd;

namespace {

// The whole exchange of one connection (a hook's create, attach, attached)
// must fit in kConnectionTimeout; a client that has sent nothing after
// kFirstRequestTimeout is closed sooner, so idle connections cannot hold
// the slots below for long. Every real client sends at once.
constexpr auto kConnectionTimeout = std::chrono::seconds(10);
constexpr auto kFirstRequestTimeout = std::chrono::seconds(2);
// Containers announced over NRI that have not started yet: a start, stop
// or removal takes each away, so only a runtime that lost track of many
// would come near this.
constexpr std::size_t kMaxNriClaims = 4096;
// Connections served at once. Each holds an fd, and a pending create holds
// a built view until "attached": the cap bounds both. Beyond it a new
// connection gets {"ok":false,"busy":true,...} and is closed at once; the
// hook retries for a few seconds (plugin/hook/main.cpp).
constexpr std::size_t kMaxConnections = 128;



// Reads a value the CLI sent in a sealed memfd straight into locked memory.
Result<SecureBuffer> readValue(int fd, const std::string& name, std::size_t limit) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno("inspecting the value");
    if (!S_ISREG(st.st_mode)) return fail("secret " + quote(name) + ": the value is not a memfd");
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_GROW))
        return fail("secret " + quote(name) + ": the value's memfd is not sealed");
    const auto size = static_cast<std::size_t>(st.st_size);
    if (auto ok = mountfs::checkPayloadSize(name, size, limit); !ok) return propagate(ok);
    auto buffer = SecureBuffer::allocate(size);
    if (!buffer) return propagate(buffer);
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = ::pread(fd, buffer->data() + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return failErrno("reading the value");
        done += static_cast<std::size_t>(n);
    }
    return buffer;
}

dev_t deviceOf(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? st.st_dev : 0;
}

// Takes out of `stored` the first fd `match` accepts (none: an empty one).
template <class Match>
StoredFd takeStored(std::vector<StoredFd>& stored, Match match) {
    const auto it = std::find_if(stored.begin(), stored.end(), match);
    if (it == stored.end()) return {};
    StoredFd found = std::move(*it);
    stored.erase(it);
    return found;
}

// The secret names a request's annotation (or an assignment) names, for
// a log entry; empty if it does not parse.
std::string secretNames(const std::string& specs) {
    auto refs = mountfs::parseSecretRefs(specs);
    std::vector<std::string> names;
    if (refs)
        for (const auto& r : *refs)
            if (std::find(names.begin(), names.end(), r.source) == names.end()) names.push_back(r.source);
    return joinNames(names);
}

std::string filesCount(std::size_t n) { return std::to_string(n) + (n == 1 ? " file" : " files"); }

}  // namespace

std::string joinNames(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
    return out;
}

// A container with a user namespace names a secret's owner by its own ids:
// the files get the host ids those map to (read from the init's maps).
Result<void> mapOwnersToHost(pid_t pid, std::vector<mountfs::SecretRef>& refs) {
    auto uids = platform::IdMap::read(AT_FDCWD, pid, "uid");
    if (!uids) return propagate(uids);
    auto gids = platform::IdMap::read(AT_FDCWD, pid, "gid");
    if (!gids) return propagate(gids);
    if (uids->identity() && gids->identity()) return {};
    for (auto& ref : refs) {
        auto uid = uids->toHost(ref.uid);
        if (!uid) return fail("secret " + quote(ref.source) + ": uid " + uid.error().message);
        auto gid = gids->toHost(ref.gid);
        if (!gid) return fail("secret " + quote(ref.source) + ": gid " + gid.error().message);
        ref.uid = *uid;
        ref.gid = *gid;
    }
    return {};
}

// One client connection: the socket, its deadline and its Session (the
// socket-free request handling, plugin/agent/session.cpp). A deadline covers
// the whole connection, so a slow or silent client cannot hold anything long.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(asio::io_context& io, Agent& agent, UniqueFd fd)
        : agent_(agent), socket_(io, fd.release()), timer_(io),
          deadline_(std::chrono::steady_clock::now() + kConnectionTimeout), count_(agent.connections_) {
        ++*count_;
    }
    // The io_context may destroy a pending handler, and this with it, after
    // the Agent is gone: the count is shared, not reached through agent_.
    ~Connection() { --*count_; }

    void run() {
        armTimer(std::chrono::steady_clock::now() + kFirstRequestTimeout);
        session_.emplace(agent_, peerRefusal());
        doRead();
    }

private:
    // A new expiry cancels the wait in progress (its handler sees
    // operation_aborted and does nothing).
    void armTimer(std::chrono::steady_clock::time_point when) {
        timer_.expires_at(when);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) self->close();
        });
    }

    std::optional<std::string> peerRefusal() {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
            return "cannot check the client's credentials";
        if (cred.uid == 0) return std::nullopt;
        log("refused a client with uid " + std::to_string(cred.uid),
            {.level = LogLevel::warning, .event = audit::refuse, .reason = "not_root"});
        return "permission denied: the secretshim agent serves root only (client uid " + std::to_string(cred.uid) +
               ")";
    }

    void doRead() {
        socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                           [self = shared_from_this()](const boost::system::error_code& ec) { self->onRead(ec); });
    }

    void onRead(const boost::system::error_code& ec) {
        if (ec) return close();
        auto message = receiveJson(socket_.native_handle());
        if (!message && message.error().code == EAGAIN) return doRead();
        if (!spoken_) {
            spoken_ = true;
            armTimer(deadline_);
        }
        auto out = session_->receive(std::move(message));
        if (!out.reply || !sendJson(socket_.native_handle(), *out.reply, out.fds) || out.close) return close();
        doRead();
    }

    void close() {
        timer_.cancel();
        boost::system::error_code ignored;
        socket_.close(ignored);
        if (session_) session_->abandon();
    }

    Agent& agent_;
    asio::posix::stream_descriptor socket_;
    asio::steady_timer timer_;
    std::chrono::steady_clock::time_point deadline_;
    std::shared_ptr<std::size_t> count_;
    std::optional<Session> session_;
    bool spoken_ = false;  // a first message arrived
};

Reservation::Reservation(std::shared_ptr<Counts> counts, std::string name, std::size_t amount)
    : counts_(std::move(counts)), name_(std::move(name)), amount_(amount) {
    (*counts_)[name_] += amount_;
}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
    if (this != &other) {
        release();
        counts_ = std::move(other.counts_);
        name_ = std::move(other.name_);
        amount_ = other.amount_;
    }
    return *this;
}

void Reservation::release() {
    if (!counts_) return;
    if (const auto it = counts_->find(name_); it != counts_->end() && (it->second -= amount_) == 0) counts_->erase(it);
    counts_.reset();
}

Agent::Agent(asio::io_context& io, AgentConfig config, TaskRecords records, LocalSource* local, FdStore* fdStore)
    : AgentCore(local, [](const std::string& line, const LogFields& fields) { log(line, fields); }),
      io_(io), config_(std::move(config)), records_(std::move(records)), source_(local), local_(local),
      fdStore_(fdStore) {}

std::size_t Agent::holders(const std::string& name) const {
    std::size_t n = 0;
    for (const auto& [id, task] : clusterTasks_) n += task == name;
    const auto pending = pendingClaims_->find(name);
    return n + (pending == pendingClaims_->end() ? 0 : pending->second);
}

std::size_t Agent::heldBytes() const {
    std::size_t n = 0;
    for (const auto& [id, task] : tasks_) n += task.record.bytes;
    const auto pending = pendingBytes_->find("");
    return n + (pending == pendingBytes_->end() ? 0 : pending->second);
}

Result<std::size_t> Agent::checkLimits(const mountfs::PayloadSource& payloads) const {
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < payloads.count(); ++i) bytes += payloads.size(i);
    if (payloads.count() > config_.maxContainerFiles)
        return fail("the container asks for " + std::to_string(payloads.count()) +
                    " secret files, over the limit of " + std::to_string(config_.maxContainerFiles) +
                    " (max_container_files)");
    if (bytes > config_.maxContainerBytes)
        return fail("the container asks for " + std::to_string(bytes) + " bytes of secrets, over the limit of " +
                    std::to_string(config_.maxContainerBytes) + " (max_container_bytes)");
    if (const std::size_t held = heldBytes(); bytes > config_.maxNodeBytes - std::min(held, config_.maxNodeBytes))
        return fail("the node holds " + std::to_string(held) + " bytes of secrets for running containers: " +
                    std::to_string(bytes) + " more would pass its limit of " + std::to_string(config_.maxNodeBytes) +
                    " (max_node_bytes)");
    return bytes;
}

void Agent::adoptTasks(std::vector<StoredFd> stored) {
    std::vector<std::string> problems;
    auto records = records_.loadAll(problems);
    // Each record's view as the fd store kept it: under its name, on the
    // device the record names. All are taken before an fd is looked for by
    // name alone, to be refused, below.
    std::vector<StoredFd> kept;
    for (const auto& r : records)
        kept.push_back(takeStored(stored, [&](const StoredFd& s) {
            return r.viewDevice != 0 && s.name == r.storeName() && deviceOf(s.fd.get()) == r.viewDevice;
        }));
    for (std::size_t i = 0; i < records.size(); ++i) {
        const TaskRecord& r = records[i];
        const auto device = static_cast<dev_t>(r.viewDevice);
        const auto named = [&](const StoredFd& s) { return s.name == r.storeName(); };
        UniqueFd pidfd(platform::sysPidfdOpen(r.pid, 0));
        auto start = pidfd ? processStartTime(r.pid) : Result<unsigned long long>(fail("gone"));
        if (!kept[i].fd) kept[i] = takeStored(stored, named);  // not its view: refused, nothing written
        const bool hadKept = kept[i].fd.valid();
        if (!pidfd || !start || *start != r.startTime) {
            forgetExited(r, std::move(kept[i]));
            continue;
        }
        auto refs = mountfs::parseSecretRefs(r.secrets);
        // Owners as the files carry them (host ids), for live updates.
        if (auto mapped = refs; mapped && mapOwnersToHost(r.pid, *mapped)) refs = std::move(mapped);
        auto layout = refs ? mountfs::planView(*refs) : propagate(refs);
        if (layout && r.viewDevice == 0) layout = fail("its record names no view device: left as it is");
        // The view as the fd store kept it (after a crash or a restart):
        // nothing of the container is entered or looked at. Otherwise (no
        // systemd, or after a stop, which empties the store) its mounts in
        // the container, proven ours by the device.
        std::unique_ptr<platform::TmpfsView> restored;
        if (layout && kept[i].fd) {
            auto back = platform::TmpfsView::fromStore(*layout, std::move(kept[i].fd), device,
                                                       platform::kernelFeatures(), config_.maxPayload);
            if (back)
                restored = std::move(*back);
            else
                log("container " + quote(r.id) + ": its view in the fd store was not taken back: " +
                        back.error().message,
                    {.level = LogLevel::warning, .containers = {r.id}});
        }
        const bool inFdStore = restored != nullptr;
        if (hadKept && !inFdStore && fdStore_) fdStore_->drop(kept[i].name);
        auto view = inFdStore ? Result<std::unique_ptr<platform::TmpfsView>>(std::move(restored))
                    : layout  ? platform::TmpfsView::adopt(std::move(*layout), pidfd.get(), device,
                                                           platform::kernelFeatures(), config_.maxPayload)
                              : propagate(layout);
        if (!view) {
            log("container " + quote(r.id) + ": cannot re-adopt its secrets: " + view.error().message,
                {.level = LogLevel::err, .containers = {r.id}, .identity = identityOf(r), .task = r.task});
            records_.remove(r.key());
            continue;
        }
        std::vector<std::string> names;
        for (const auto& ref : *refs)
            if (std::find(names.begin(), names.end(), ref.source) == names.end()) names.push_back(ref.source);
        log("container " + quote(r.id) + ": re-adopted secrets " + joinNames(names) +
                (inFdStore ? " from the fd store" : " from its mounts in the container"),
            {.event = audit::adopt, .containers = {r.id}, .secrets = joinNames(names), .identity = identityOf(r),
             .task = r.task});
        // Cluster mode: tied to its task again; the first read of etcd
        // brings it what changed while the agent was down.
        if (!r.task.empty()) {
            clusterTasks_[r.key()] = r.task;
            clusterResync_.insert(r.key());
        }
        addTask(r, std::move(names), std::move(*view), std::move(pidfd), inFdStore ? kept[i].name : std::string());
    }
    for (const auto& p : problems) log(p, {.level = LogLevel::warning});
    wipeUnclaimed(std::move(stored));
}

// A container that exited while no agent ran. The view the fd store kept
// for it is wiped through that handle (each file zeroed, then unlinked)
// before the handle goes; without one, its tmpfs is freed by the kernel as
// it is, once the container's mounts are gone.
void Agent::forgetExited(const TaskRecord& r, StoredFd stored) {
    std::string outcome = "forgotten (the agent had no handle on its view: its memory is freed unwiped)";
    if (stored.fd) {
        const auto device = static_cast<dev_t>(r.viewDevice);
        auto ours = device != 0 ? platform::TmpfsView::checkStored(stored.fd.get(), device)
                                : Result<void>(fail("its record names no view device"));
        if (!ours) {
            outcome = "forgotten; what the fd store kept for it is not its view (" + ours.error().message +
                      "): closed, nothing written";
        } else {
            auto wiped = platform::TmpfsView::wipeStored(stored.fd.get(), device);
            outcome = wiped ? "its secrets were wiped (" + filesCount(*wiped) + ")"
                            : "its secrets were not all wiped: " + wiped.error().message;
        }
        stored.fd.reset();
        if (fdStore_) fdStore_->drop(stored.name);
    }
    log("container " + quote(r.id) + ": exited while the agent was down; " + outcome,
        {.event = audit::flush, .containers = {r.id}, .secrets = secretNames(r.secrets), .identity = identityOf(r),
         .task = r.task});
    records_.remove(r.key());
}

// What the fd store kept under a name no record has (the record was lost,
// or the agent died between removing it and telling systemd): a view
// nobody could flush any more, wiped if it is a view's root at all. Not
// one on the device of a view just re-adopted through its mounts: that is
// the view of a running container, kept under a name this agent does not
// give (an agent that named views otherwise); it is only let go.
void Agent::wipeUnclaimed(std::vector<StoredFd> stored) {
    // A running task's name stays stored (a name is unique per task key,
    // so this is only a duplicate entry under it).
    std::set<std::string> inUse;
    std::map<dev_t, std::string> running;  // view device -> container id
    for (const auto& [key, task] : tasks_) {
        if (!task.storedAs.empty()) inUse.insert(task.storedAs);
        if (task.record.viewDevice != 0) running.emplace(static_cast<dev_t>(task.record.viewDevice), key.id);
    }
    for (auto& s : stored) {
        std::string outcome;
        const auto owner = running.find(deviceOf(s.fd.get()));
        if (owner != running.end()) {
            outcome = "is the view of container " + quote(owner->second) +
                      ", already re-adopted: let go, nothing written";
        } else if (auto ours = platform::TmpfsView::checkStored(s.fd.get(), 0); !ours) {
            outcome = "is not a secrets view (" + ours.error().message + "): closed, nothing written";
        } else {
            auto wiped = platform::TmpfsView::wipeStored(s.fd.get(), 0);
            outcome = wiped ? "belongs to no task: its view was wiped (" + filesCount(*wiped) + ")"
                            : "belongs to no task: its view was not all wiped: " + wiped.error().message;
        }
        log("the fd store's entry " + quote(s.name) + " " + outcome);
        s.fd.reset();
        if (fdStore_ && !inUse.count(s.name)) fdStore_->drop(s.name);
    }
}

Result<void> Agent::listen() {
    sockaddr_un addr{};
    if (config_.socket.size() >= sizeof addr.sun_path) return fail("socket path too long: " + config_.socket);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, config_.socket.data(), config_.socket.size());
    const std::string dir = config_.socket.substr(0, config_.socket.rfind('/'));
    if (!dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return failErrno("creating " + dir);
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!sock) return failErrno("socket");
    // A SIGKILLed agent leaves its socket file behind.
    (void)::unlink(config_.socket.c_str());
    const mode_t old = ::umask(0177);  // born 0600: no window where others may connect
    const int bound = ::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (bound != 0) return failErrno("binding " + config_.socket);
    if (::listen(sock.get(), 128) != 0) return failErrno("listening on " + config_.socket);
    listener_ = std::make_unique<asio::posix::stream_descriptor>(io_, sock.release());
    acceptNext();
    return {};
}

void Agent::acceptNext() {
    listener_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec) return;
        for (;;) {
            UniqueFd fd(::accept4(listener_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!fd) break;
            if (*connections_ >= kMaxConnections) {
                refuseBusy(std::move(fd));
                continue;
            }
            std::make_shared<Connection>(io_, *this, std::move(fd))->run();
        }
        acceptNext();
    });
}

// Over the cap: one line for the client, closed at once. The log says so
// at most once a second, with how many were refused since it last did.
void Agent::refuseBusy(UniqueFd fd) {
    json busy = errorReply("the secretshim agent is busy: " + std::to_string(kMaxConnections) + " connections open");
    busy["busy"] = true;
    (void)sendJson(fd.get(), busy);
    ++busyRefused_;
    const auto now = std::chrono::steady_clock::now();
    if (now - lastBusyLog_ < std::chrono::seconds(1)) return;
    log("refused " + std::to_string(busyRefused_) + " connection(s): " + std::to_string(kMaxConnections) +
            " open, the limit",
        {.level = LogLevel::warning, .event = audit::refuse, .reason = "busy"});
    busyRefused_ = 0;
    lastBusyLog_ = now;
}

void Agent::stop() {
    if (listener_) {
        boost::system::error_code ignored;
        listener_->close(ignored);
        (void)::unlink(config_.socket.c_str());
    }
    // Running containers keep their secrets across a stop (SIGTERM from
    // systemctl stop/restart, a package upgrade), as across a kill: the
    // next agent re-adopts them from their records.
    for (auto& [id, task] : tasks_) {
        if (task.exitWatch) task.exitWatch->cancel();
        task.view->keepAttached();
    }
}

Result<Agent::PendingTask> Agent::prepareTask(const CreateRequest& request, std::vector<UniqueFd>& fds,
                                              Refused& why) {
    auto task = buildTask(request, fds, why);
    if (!task) metrics_.refused(why.kind);
    return task;
}

Result<Agent::PendingTask> Agent::buildTask(const CreateRequest& request, std::vector<UniqueFd>& fds, Refused& why) {
    PendingTask task;
    task.rotations = rotations_;
    why.kind = Refusal::badRequest;
    task.record.id = request.id;
    task.record.bundle = request.bundle;  // "" from a hook older than bundles
    if (task.record.id.empty()) return fail("the request names no container");
    // A NUL byte could make two keys share a record's name (task_key.cpp);
    // no runtime names a container or a bundle so.
    if (task.record.id.find('\0') != std::string::npos || task.record.bundle.find('\0') != std::string::npos)
        return fail("the request's container id or bundle holds a NUL byte");
    if (fds.size() != 1) return fail("the request carries no pidfd of the container");
    if (tasks_.count(task.record.key()))
        return fail("container " + quote(task.record.id) + " already has its secrets");
    why.kind = Refusal::identity;
    // Who it is and what it asks for: from the hook, or for an NRI
    // container from what the runtime told the agent before it was created.
    std::string secrets = request.secrets, clusterTask = request.task;
    Result<WorkloadIdentity> identity = tl::unexpected(Error{});
    if (request.nri) {
        const auto claim = nriClaims_.find(request.id);
        if (claim == nriClaims_.end())
            return why.kind = Refusal::identity,
                   fail("the runtime did not announce this container over NRI (is secretshim-nri running?)");
        identity = claim->second.identity;
        secrets = claim->second.secrets;
        clusterTask = claim->second.task;
    } else {
        identity = WorkloadIdentity::fromJson(request.identity);
        if (!identity) return propagate(identity);
        if (identity->integration == Integration::nri)
            return why.kind = Refusal::identity,
                   fail("an NRI container's identity comes from the runtime, not from its hook");
    }
    why.identity = *identity;
    why.secrets = secretNames(secrets);
    why.task = clusterTask;
    why.kind = Refusal::other;  // its init is gone
    task.pidfd = std::move(fds[0]);
    auto pid = pidOfPidfd(task.pidfd.get());
    if (!pid) return propagate(pid);
    auto start = processStartTime(*pid);
    if (!start) return propagate(start);
    task.record.pid = *pid;
    task.record.startTime = *start;

    // The source decides what this identity gets of what it asked for.
    auto granted = source_->grant(*identity, secrets, clusterTask);
    if (!granted) return why.kind = refusalOfGrant(granted.error()), propagate(granted);
    why.secrets = secretNames(granted->specs);
    why.kind = Refusal::limit;
    if (!granted->claim.empty()) {
        const std::size_t held = holders(granted->claim);
        if (held >= granted->maxHolders)
            return why.kind = Refusal::limit,
                   fail("task " + quote(granted->claim) + " is held by " + std::to_string(held) + " container(s), " +
                        "its limit (max_containers " + std::to_string(granted->maxHolders) + ")");
        task.claim = Reservation(pendingClaims_, granted->claim, 1);
        task.record.task = granted->claim;  // re-adopted after an agent restart, it is tied to its task again
    }
    task.record.secrets = granted->specs;
    task.record.identity = std::move(*identity);
    auto refs = std::move(granted->refs);
    // Sizes are known from the records (or the cluster's copies): nothing
    // has been decrypted yet.
    auto bytes = checkLimits(*granted->payloads);
    if (!bytes) return why.kind = Refusal::limit, propagate(bytes);
    task.record.bytes = *bytes;
    task.held = Reservation(pendingBytes_, "", *bytes);
    why.kind = Refusal::badRequest;  // an owner the container cannot map, targets that clash
    if (auto ok = mapOwnersToHost(*pid, refs); !ok) return propagate(ok);
    why.kind = Refusal::target;
    auto layout = mountfs::planView(refs);
    if (!layout) return propagate(layout);
    why.kind = Refusal::limit;
    // Each single-file target is one more fd to pass (and the directory one).
    const auto files = std::count_if(layout->entries.begin(), layout->entries.end(),
                                     [](const auto& e) { return !e.inDirectory; });
    if (static_cast<std::size_t>(files) + 1 > platform::kMaxPassedFds)
        return fail(std::to_string(files) + " targets outside " + std::string(mountfs::kSecretsDir) +
                    ": at most " + std::to_string(platform::kMaxPassedFds - 1) + " can be attached");
    for (const auto& ref : refs)
        if (std::find(task.secrets.begin(), task.secrets.end(), ref.source) == task.secrets.end())
            task.secrets.push_back(ref.source);
    // Each value is produced straight into its file in the view (local
    // mode: decrypted from its record through one small locked buffer), so
    // the view's tmpfs is the only copy of the plaintext.
    why.kind = Refusal::other;
    mountfs::ViewOptions options;
    options.maxPayload = config_.maxPayload;
    auto view = platform::TmpfsView::build(std::move(*layout), *granted->payloads, options, platform::kernelFeatures());
    if (!view) return propagate(view);
    task.view = std::move(*view);
    return task;
}

void Agent::startTask(PendingTask pending) {
    pending.view->releaseMountSources();
    pending.record.viewDevice = pending.view->device();
    const std::string id = pending.record.id;
    if (!pending.record.task.empty()) clusterTasks_[pending.record.key()] = pending.record.task;
    pending.claim.release();  // counted in clusterTasks_ from now on
    // Started: its record holds who it is from now on (also across an
    // agent restart), and the announcement has served.
    if (pending.record.identity && pending.record.identity->integration == Integration::nri) nriClaims_.erase(id);
    const auto saved = records_.save(pending.record);
    if (!saved)
        log("container " + quote(id) + ": its record was not saved, it will not survive an agent restart: " +
                saved.error().message,
            {.level = LogLevel::err, .containers = {id}});
    ++metrics_.attaches;
    log("container " + quote(id) + ": attached secrets " + joinNames(pending.secrets) +
            (pending.view->noswap() ? " (noswap)" : " (swap not excluded)"),
        {.event = audit::attach, .containers = {id}, .secrets = joinNames(pending.secrets),
         .identity = identityOf(pending.record), .task = pending.record.task});
    // Only once its record is saved: a successor that finds a view in the
    // store with no record wipes it.
    std::string storedAs;
    if (saved && fdStore_ && pending.view->writableRoot() >= 0) {
        storedAs = pending.record.storeName();
        fdStore_->keep(storedAs, pending.view->writableRoot());
    }
    addTask(pending.record, std::move(pending.secrets), std::move(pending.view), std::move(pending.pidfd),
            std::move(storedAs));
    pending.held.release();  // counted in tasks_ from now on
    catchUpRotations(pending.record.key(), pending.rotations);
}

void Agent::addTask(const TaskRecord& record, std::vector<std::string> secrets,
                    std::unique_ptr<platform::TmpfsView> view, UniqueFd pidfd, std::string storedAs) {
    Task task;
    task.record = record;
    task.secrets = std::move(secrets);
    task.view = std::move(view);
    task.storedAs = std::move(storedAs);
    task.exitWatch = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd.release());
    tasks_[record.key()] = std::move(task);
    watchExit(record);
}

// A pidfd turns readable when the process exits: flush then, whether or not
// a poststop hook ever runs. Before flushing, /proc must agree that the
// whole thread group is gone (a zombie leader with live threads, as during
// a non-leader thread's execve(), is still a running process).
void Agent::watchExit(const TaskRecord& record) {
    const auto it = tasks_.find(record.key());
    if (it == tasks_.end()) return;
    it->second.exitWatch->async_wait(
        asio::posix::stream_descriptor::wait_read, [this, record](const boost::system::error_code& ec) {
            if (ec || !tasks_.count(record.key())) return;
            if (processRunning(record.pid, record.startTime)) return watchExit(record);
            flushTask(record.key(), "exited");
        });
}

void Agent::flushTask(TaskKey key, const char* why) {
    const auto it = tasks_.find(key);
    if (it == tasks_.end()) return;
    const auto start = std::chrono::steady_clock::now();
    auto ok = it->second.view->flush();
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    boost::system::error_code ignored;
    if (it->second.exitWatch) it->second.exitWatch->close(ignored);
    // Out of the store once wiped (a crash before this line finds it there
    // with the container gone, and wipes it again).
    if (!it->second.storedAs.empty() && fdStore_) fdStore_->drop(it->second.storedAs);
    metrics_.flushed(std::chrono::microseconds(us));
    const std::string names = joinNames(it->second.secrets);
    const TaskRecord record = std::move(it->second.record);
    tasks_.erase(it);
    clusterTasks_.erase(key);
    clusterResync_.erase(key);
    records_.remove(key);
    log("container " + quote(key.id) + ": " + why + ", secrets flushed in " + std::to_string(us) + " us" +
            (ok ? "" : " (with an error: " + ok.error().message + ")"),
        {.level = ok ? LogLevel::info : LogLevel::err, .event = audit::flush, .containers = {key.id},
         .secrets = names, .identity = identityOf(record), .task = record.task});
}

// The hook's poststop names its container by id and bundle, and the task
// with that very key is flushed. A release without a bundle comes from a
// hook older than bundles (a package upgrade replaced the hook while the
// container ran, or another client): it flushes the task with that id only
// if exactly one runs, never a guess between two. A task whose create sent
// no bundle is not released by a poststop that sends one. Neither loses a
// flush: every task is flushed when its init exits, whatever poststop says.
void Agent::releaseTask(const std::string& id, const std::string& bundle) {
    if (!bundle.empty()) return flushTask({id, bundle}, "released by poststop");
    const auto first = tasks_.lower_bound({id, ""});  // keys sort by id first
    std::size_t count = 0;
    for (auto it = first; it != tasks_.end() && it->first.id == id; ++it) ++count;
    if (count == 1) return flushTask(first->first, "released by poststop");
    if (count > 1)
        log("container " + quote(id) + ": a release without a bundle (a hook older than the agent) names " +
                std::to_string(count) +
                " running containers with that id: none released, each is flushed when it exits",
            {.level = LogLevel::warning, .containers = {id}});
}

std::vector<TaskKey> Agent::tasksUsing(const std::string& name) const {
    std::vector<TaskKey> keys;
    for (const auto& [key, task] : tasks_)
        if (std::find(task.secrets.begin(), task.secrets.end(), name) != task.secrets.end()) keys.push_back(key);
    return keys;
}

json Agent::handle(const json& request, std::vector<UniqueFd>& fds) {
    return AgentCore::handle(request, [&](const SecretCreateRequest& create) -> Result<SecureBuffer> {
        if (fds.size() != 1) return fail("secret.create needs the value as a memfd");
        return readValue(fds[0].get(), create.name, config_.maxPayload);
    });
}

Result<json> Agent::release(const ReleaseRequest& request) {
    releaseTask(request.id, request.bundle);
    return json::object();
}

// Paged: plugin/agent/task_list.hpp.
Result<json> Agent::listTasks(const TaskListRequest& request) {
    std::map<TaskKey, const std::vector<std::string>*> secretsByKey;
    for (const auto& [key, task] : tasks_) secretsByKey.emplace_hint(secretsByKey.end(), key, &task.secrets);
    // A client older than bundles sends "after" alone (task_list.hpp).
    return taskListPage(secretsByKey, {request.after, request.afterBundle});
}

Result<json> Agent::status() {
    json reply = {{"tasks", tasks_.size()}, {"source", config_.source},
                  {"kernel", platform::kernelFeatures().describe()}, {"held_bytes", heldBytes()},
                  {"memory", {{"noswap", platform::kernelFeatures().tmpfsNoswap},
                              {"allow_swap", config_.allowSwap},
                              {"init_on_free", platform::initOnFree()}}},
                  {"limits", {{"max_payload", config_.maxPayload},
                              {"max_container_bytes", config_.maxContainerBytes},
                              {"max_container_files", config_.maxContainerFiles},
                              {"max_node_bytes", config_.maxNodeBytes}}}};
    if (cluster_) reply["cluster"] = clusterStatus();
    return reply;
}

// status's figures, without its probes of the kernel (status reads
// /proc/cmdline and the kernel's config file: not on every scrape).
std::string Agent::metricsText() {
    HeldNow held;
    held.views = tasks_.size();
    held.bytes = heldBytes();
    if (cluster_) {
        const json c = clusterStatus();
        held.cluster = HeldNow::Cluster{c.at("connected").get<bool>(), c.at("revision").get<std::int64_t>()};
    }
    return renderAgentMetrics(metrics_, held, SECRETSHIM_VERSION);
}

Result<json> Agent::platformOp(const std::string& op, const json& request) {
    if (op == op::nriCreate) {
        Refusal reason = Refusal::badRequest;
        auto reply = nriCreate(request, reason);
        if (!reply) metrics_.refused(reason);
        return reply;
    }
    if (op == op::nriStop) {
        auto stop = NriStopRequest::fromJson(request);
        if (!stop) return propagate(stop);
        nriStop(stop->id);
        return json::object();
    }
    return AgentCore::platformOp(op, request);
}

// secretshim-nri at the runtime's CreateContainer: what would not be
// granted is refused now (the runtime refuses the container with this
// line, before anything runs); what would is kept for the hook's create.
Result<json> Agent::nriCreate(const json& message, Refusal& reason) {
    auto request = NriCreateRequest::fromJson(message);
    if (!request) return propagate(request);
    if (request->id.empty() || request->id.find('\0') != std::string::npos)
        return fail("nri.create: the container id is empty or holds a NUL byte");
    reason = Refusal::identity;
    auto identity = WorkloadIdentity::fromJson(request->identity);
    if (!identity) return propagate(identity);
    if (identity->integration != Integration::nri) return fail("nri.create: the identity is not the runtime's (nri)");
    reason = Refusal::limit;
    if (nriClaims_.size() >= kMaxNriClaims && !nriClaims_.count(request->id))
        return fail(std::to_string(nriClaims_.size()) + " containers announced over NRI have not started yet");
    auto granted = source_->grant(*identity, request->secrets, request->task);
    if (!granted) {
        reason = refusalOfGrant(granted.error());
        log("container " + quote(request->id) + ": refused over NRI: " + granted.error().message,
            {.level = LogLevel::warning, .event = audit::refuse, .containers = {request->id},
             .secrets = secretNames(request->secrets), .identity = &*identity, .task = request->task,
             .reason = refusalLabel(reason)});
        return propagate(granted);
    }
    log("container " + quote(request->id) + ": announced over NRI as " + identity->describe(),
        {.containers = {request->id}, .secrets = secretNames(request->secrets), .identity = &*identity,
         .task = request->task});
    nriClaims_[request->id] = {std::move(*identity), request->secrets, request->task};
    return json::object();
}

// The container stopped (or was removed, or was never created): its
// secrets are flushed now, as a poststop would. Only an NRI container's: a
// container of the same id that root ran elsewhere is not the runtime's.
void Agent::nriStop(const std::string& id) {
    nriClaims_.erase(id);
    std::vector<TaskKey> keys;
    for (auto it = tasks_.lower_bound({id, ""}); it != tasks_.end() && it->first.id == id; ++it)
        if (it->second.record.identity && it->second.record.identity->integration == Integration::nri)
            keys.push_back(it->first);
    for (const auto& key : keys) flushTask(key, "it stopped (NRI)");
}

// What `secret ls`, `secret inspect` and `secret rm` see of the tasks that
// hold a secret: their container ids.
std::vector<std::string> Agent::tasksHolding(const std::string& name) const {
    std::vector<std::string> ids;
    for (const auto& key : tasksUsing(name)) ids.push_back(key.id);
    return ids;
}

// A revoked grant reaches the running containers at once, as a cluster
// revocation does: each reference to `name` that no rule allows any more
// (for the container's identity and the reference as it asked for it) is
// zeroed and removed, a single-file target's mount detached.
void Agent::grantRevoked(const std::string& name) {
    for (const auto& key : tasksUsing(name)) {
        Task& task = tasks_.at(key);
        const auto refs = mountfs::parseSecretRefs(task.record.secrets);
        if (!refs) continue;  // what it holds was checked when it was granted
        std::vector<std::string> targets;
        for (const auto& ref : *refs)
            if (ref.source == name && !(task.record.identity && local_->allows(*task.record.identity, ref)))
                targets.push_back(ref.target);
        if (targets.empty()) continue;
        revokeTargets(task, targets);
        keepHeld(task, *refs);
    }
}

bool Agent::revokeTargets(Task& t, const std::vector<std::string>& targets) {
    const mountfs::ContainerHandle handle{t.exitWatch->native_handle(), "/"};
    bool any = false;
    for (const auto& target : targets) {
        const auto& entries = t.view->layout().entries;
        const auto at = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.ref.target == target; });
        if (at == entries.end()) continue;
        const std::size_t before = entries.size();
        const std::string source = at->ref.source;
        auto ok = t.view->removeEntry(static_cast<std::size_t>(at - entries.begin()), handle);
        const bool gone = t.view->layout().entries.size() < before;  // zeroed and removed
        any = any || gone;
        metrics_.revokes += gone;
        log("container " + quote(t.record.id) + ": " + target +
                (ok ? " revoked" : (gone ? " revoked, with an error: " : " not revoked: ") + ok.error().message),
            {.level = ok ? LogLevel::info : LogLevel::err, .event = gone ? audit::revoke : std::string_view(),
             .containers = {t.record.id}, .secrets = source, .identity = identityOf(t.record), .task = t.record.task});
    }
    return any;
}

// For `task ls`, `secret rm` and a restart of the agent: the record keeps
// the references as the container asked for them, those its view holds.
void Agent::keepHeld(Task& t, const std::vector<mountfs::SecretRef>& refs) {
    std::string specs;
    t.secrets.clear();
    const auto& entries = t.view->layout().entries;
    for (const auto& ref : refs) {
        if (std::none_of(entries.begin(), entries.end(), [&](const auto& e) { return e.ref.target == ref.target; }))
            continue;
        specs += (specs.empty() ? "" : ";") + mountfs::formatSecretRef(ref);
        if (std::find(t.secrets.begin(), t.secrets.end(), ref.source) == t.secrets.end()) t.secrets.push_back(ref.source);
    }
    t.record.secrets = specs;
    (void)records_.save(t.record);
}

}  // namespace secretshim::plugin
