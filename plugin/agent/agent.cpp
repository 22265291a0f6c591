#include "plugin/agent/agent.hpp"

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

#include "mountfs/secret_ref.hpp"
#include "mountfs/view_layout.hpp"
#include "platform/linux/fd_passing.hpp"
#include "platform/linux/mount_api.hpp"
#include "plugin/protocol/channel.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

namespace asio = boost::asio;
using nlohmann::json;
using platform::UniqueFd;

namespace {

constexpr auto kConnectionTimeout = std::chrono::seconds(10);

void log(const std::string& line) { std::fprintf(stderr, "secretshimd: %s\n", line.c_str()); }

json failure(const std::string& message) { return {{"ok", false}, {"error", message}}; }

std::string joinNames(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
    return out;
}

// Reads a value the CLI sent in a sealed memfd straight into locked memory.
Result<SecureBuffer> readValue(int fd, const std::string& name, std::size_t limit) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno("inspecting the value");
    if (!S_ISREG(st.st_mode)) return fail("secret " + quote(name) + ": the value is not a memfd");
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_GROW))
        return fail("secret " + quote(name) + ": the value's memfd is not sealed");
    const auto size = static_cast<std::size_t>(st.st_size);
    if (auto ok = mountfs::checkPayloadSize(name, size, limit); !ok) return tl::unexpected(ok.error());
    auto buffer = SecureBuffer::allocate(size);
    if (!buffer) return tl::unexpected(buffer.error());
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = ::pread(fd, buffer->data() + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return failErrno("reading the value");
        done += static_cast<std::size_t>(n);
    }
    return buffer;
}

}  // namespace

// One client connection: reads requests, answers them, and for a hook
// holds the task between "create" and "attached". A deadline covers the
// whole connection, so a slow or silent client cannot hold anything long.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(asio::io_context& io, Agent& agent, UniqueFd fd)
        : agent_(agent), socket_(io, fd.release()), timer_(io) {}

    void run() {
        timer_.expires_after(kConnectionTimeout);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) self->close();
        });
        // A refused peer still gets its answer, to its first request: a
        // reply before it has sent would end in EPIPE on its side.
        if (!peerIsRoot()) refused_ = true;
        doRead();
    }

private:
    bool peerIsRoot() {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            refusal_ = "cannot check the client's credentials";
            return false;
        }
        if (cred.uid == 0) return true;
        refusal_ = "permission denied: the secretshim agent serves root only (client uid " +
                   std::to_string(cred.uid) + ")";
        log("refused a client with uid " + std::to_string(cred.uid));
        return false;
    }

    void doRead() {
        socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                           [self = shared_from_this()](const boost::system::error_code& ec) { self->onRead(ec); });
    }

    void onRead(const boost::system::error_code& ec) {
        if (ec) return close();
        auto message = receiveJson(socket_.native_handle());
        const int code = message ? 0 : message.error().code;
        if (code == EAGAIN) return doRead();
        if (refused_ || code == EBADMSG) {
            (void)sendJson(socket_.native_handle(), failure(refused_ ? refusal_ : "malformed request"));
            return close();
        }
        if (!message) return close();  // closed, truncated or oversized: drop the client
        const json& request = message->body;
        const std::string op = stringField(request, "op");
        if (op == "create") return onCreate(request, message->fds);
        if (op == "attached") return onAttached(request);
        (void)sendJson(socket_.native_handle(), agent_.handle(request, message->fds));
        doRead();
    }

    void onCreate(const json& request, std::vector<UniqueFd>& fds) {
        if (pending_) {
            (void)sendJson(socket_.native_handle(), failure("one create per connection"));
            return close();
        }
        auto task = agent_.prepareTask(request, fds);
        if (!task) {
            log("container " + quote(stringField(request, "id")) + ": refused: " + task.error().message);
            (void)sendJson(socket_.native_handle(), failure(task.error().message));
            return close();
        }
        json mounts = json::array();
        std::vector<int> mountFds;
        for (const auto& source : task->view->mountSources()) {
            mounts.push_back({{"target", source.target}, {"directory", source.directory}});
            mountFds.push_back(source.fd);
        }
        if (auto ok = sendJson(socket_.native_handle(), {{"ok", true}, {"mounts", mounts}}, mountFds); !ok)
            return close();  // the pending view is flushed with the connection
        pending_ = std::make_unique<Agent::PendingTask>(std::move(*task));
        doRead();
    }

    void onAttached(const json& request) {
        if (!pending_) {
            (void)sendJson(socket_.native_handle(), failure("nothing to attach"));
            return close();
        }
        if (!boolField(request, "ok")) {
            log("container " + quote(pending_->record.id) + ": the hook could not attach: " +
                quote(stringField(request, "error")));
            pending_.reset();  // flushes the view
            (void)sendJson(socket_.native_handle(), json{{"ok", true}});
            return close();
        }
        agent_.startTask(std::move(*pending_));
        pending_.reset();
        (void)sendJson(socket_.native_handle(), json{{"ok", true}});
        close();
    }

    void close() {
        timer_.cancel();
        boost::system::error_code ignored;
        socket_.close(ignored);
        pending_.reset();
    }

    Agent& agent_;
    asio::posix::stream_descriptor socket_;
    asio::steady_timer timer_;
    std::unique_ptr<Agent::PendingTask> pending_;
    std::string refusal_;
    bool refused_ = false;
};

Agent::Agent(asio::io_context& io, AgentConfig config, LocalStore store, TaskRecords records)
    : io_(io), config_(std::move(config)), store_(std::move(store)), records_(std::move(records)) {}

void Agent::adoptTasks() {
    std::vector<std::string> problems;
    for (auto& r : records_.loadAll(problems)) {
        UniqueFd pidfd(platform::sysPidfdOpen(r.pid, 0));
        auto start = pidfd ? processStartTime(r.pid) : Result<unsigned long long>(fail("gone"));
        if (!pidfd || !start || *start != r.startTime) {
            log("container " + quote(r.id) + ": exited while the agent was down; forgotten");
            records_.remove(r.id);
            continue;
        }
        auto refs = mountfs::parseSecretRefs(r.secrets);
        auto layout = refs ? mountfs::planView(*refs) : tl::unexpected(refs.error());
        auto view = layout ? platform::TmpfsView::adopt(std::move(*layout), pidfd.get(), platform::kernelFeatures())
                           : tl::unexpected(layout.error());
        if (!view) {
            log("container " + quote(r.id) + ": cannot re-adopt its secrets: " + view.error().message);
            records_.remove(r.id);
            continue;
        }
        std::vector<std::string> names;
        for (const auto& ref : *refs)
            if (std::find(names.begin(), names.end(), ref.source) == names.end()) names.push_back(ref.source);
        log("container " + quote(r.id) + ": re-adopted secrets " + joinNames(names));
        addTask(r, std::move(names), std::move(*view), std::move(pidfd));
    }
    for (const auto& p : problems) log(p);
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
            std::make_shared<Connection>(io_, *this, std::move(fd))->run();
        }
        acceptNext();
    });
}

void Agent::stop() {
    if (listener_) {
        boost::system::error_code ignored;
        listener_->close(ignored);
        (void)::unlink(config_.socket.c_str());
    }
    for (auto& [id, task] : tasks_)
        if (task.exitWatch) task.exitWatch->cancel();
}

Result<Agent::PendingTask> Agent::prepareTask(const json& request, std::vector<UniqueFd>& fds) {
    PendingTask task;
    task.record.id = stringField(request, "id");
    task.record.secrets = stringField(request, "secrets");
    if (task.record.id.empty()) return fail("the request names no container");
    if (fds.size() != 1) return fail("the request carries no pidfd of the container");
    if (tasks_.count(task.record.id)) return fail("container " + quote(task.record.id) + " already has its secrets");
    task.pidfd = std::move(fds[0]);
    auto pid = pidOfPidfd(task.pidfd.get());
    if (!pid) return tl::unexpected(pid.error());
    auto start = processStartTime(*pid);
    if (!start) return tl::unexpected(start.error());
    task.record.pid = *pid;
    task.record.startTime = *start;

    std::map<std::string, SecureBuffer> granted;  // cluster mode: the assignment's values
    if (auto ok = clusterGrant(request, task, granted); !ok) return tl::unexpected(ok.error());
    auto refs = mountfs::parseSecretRefs(task.record.secrets);
    if (!refs) return tl::unexpected(refs.error());
    auto layout = mountfs::planView(*refs);
    if (!layout) return tl::unexpected(layout.error());
    // Each single-file target is one more fd to pass (and the directory one).
    const auto files = std::count_if(layout->entries.begin(), layout->entries.end(),
                                     [](const auto& e) { return !e.inDirectory; });
    if (static_cast<std::size_t>(files) + 1 > platform::kMaxPassedFds)
        return fail(std::to_string(files) + " targets outside " + std::string(mountfs::kSecretsDir) +
                    ": at most " + std::to_string(platform::kMaxPassedFds - 1) + " can be attached");

    // Decrypt each secret once; the buffers are wiped when this returns: the
    // view's tmpfs is the only copy a running task needs.
    std::map<std::string, SecureBuffer> plain;
    std::vector<mountfs::Bytes> payloads;
    for (const auto& ref : *refs) {
        if (!plain.count(ref.source)) {
            auto value = cluster_ ? Result<SecureBuffer>(std::move(granted[ref.source])) : store_.load(ref.source);
            if (!value) return tl::unexpected(value.error());
            plain.emplace(ref.source, std::move(*value));
            task.secrets.push_back(ref.source);
        }
        const SecureBuffer& b = plain.at(ref.source);
        payloads.emplace_back(b.data(), b.size());
    }
    mountfs::ViewOptions options;
    options.maxPayload = config_.maxPayload;
    auto view = platform::TmpfsView::build(std::move(*layout), payloads, options, platform::kernelFeatures());
    if (!view) return tl::unexpected(view.error());
    task.view = std::move(*view);
    return task;
}

void Agent::startTask(PendingTask pending) {
    pending.view->releaseMountSources();
    const std::string id = pending.record.id;
    if (!pending.clusterTask.empty()) clusterTasks_[id] = pending.clusterTask;
    if (auto ok = records_.save(pending.record); !ok)
        log("container " + quote(id) + ": its record was not saved, it will not survive an agent restart: " +
            ok.error().message);
    log("container " + quote(id) + ": attached secrets " + joinNames(pending.secrets) +
        (pending.view->noswap() ? " (noswap)" : " (swap not excluded)"));
    addTask(pending.record, std::move(pending.secrets), std::move(pending.view), std::move(pending.pidfd));
}

void Agent::addTask(const TaskRecord& record, std::vector<std::string> secrets,
                    std::unique_ptr<platform::TmpfsView> view, UniqueFd pidfd) {
    Task task;
    task.record = record;
    task.secrets = std::move(secrets);
    task.view = std::move(view);
    task.exitWatch = std::make_unique<asio::posix::stream_descriptor>(io_, pidfd.release());
    tasks_[record.id] = std::move(task);
    watchExit(record);
}

// A pidfd turns readable when the process exits: flush then, whether or not
// a poststop hook ever runs. Before flushing, /proc must agree that the
// whole thread group is gone (a zombie leader with live threads, as during
// a non-leader thread's execve(), is still a running process).
void Agent::watchExit(const TaskRecord& record) {
    const auto it = tasks_.find(record.id);
    if (it == tasks_.end()) return;
    it->second.exitWatch->async_wait(
        asio::posix::stream_descriptor::wait_read, [this, record](const boost::system::error_code& ec) {
            if (ec || !tasks_.count(record.id)) return;
            if (processRunning(record.pid, record.startTime)) return watchExit(record);
            flushTask(record.id, "exited");
        });
}

void Agent::flushTask(const std::string& id, const char* why) {
    const auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    const auto start = std::chrono::steady_clock::now();
    auto ok = it->second.view->flush();
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    boost::system::error_code ignored;
    if (it->second.exitWatch) it->second.exitWatch->close(ignored);
    tasks_.erase(it);
    clusterTasks_.erase(id);
    records_.remove(id);
    log("container " + quote(id) + ": " + why + ", secrets flushed in " + std::to_string(us) + " us" +
        (ok ? "" : " (with an error: " + ok.error().message + ")"));
}

std::vector<std::string> Agent::tasksUsing(const std::string& name) const {
    std::vector<std::string> ids;
    for (const auto& [id, task] : tasks_)
        if (std::find(task.secrets.begin(), task.secrets.end(), name) != task.secrets.end()) ids.push_back(id);
    return ids;
}

json Agent::handle(const json& request, std::vector<UniqueFd>& fds) {
    const std::string op = stringField(request, "op");
    if (op == "release") {
        flushTask(stringField(request, "id"), "released by poststop");
        return {{"ok", true}};
    }
    if (op == "secret.create") {
        const std::string name = stringField(request, "name");
        if (fds.size() != 1) return failure("secret.create needs the value as a memfd");
        auto value = readValue(fds[0].get(), name, config_.maxPayload);
        if (!value) return failure(value.error().message);
        auto meta = store_.create(name, value->span());
        if (!meta) return failure(meta.error().message);
        log("secret " + name + " created (" + std::to_string(meta->size) + " bytes)");
        return {{"ok", true}, {"id", meta->id}};
    }
    if (op == "secret.ls" || op == "secret.inspect") {
        json list = json::array();
        auto metas = store_.list();
        if (!metas) return failure(metas.error().message);
        const std::string only = stringField(request, "name");
        for (const auto& m : *metas) {
            if (op == "secret.inspect" && m.name != only) continue;
            list.push_back({{"name", m.name}, {"id", m.id}, {"size", m.size}, {"created", m.created},
                            {"tasks", tasksUsing(m.name)}});
        }
        if (op == "secret.inspect" && list.empty()) return failure("secret " + quote(only) + " not found");
        return {{"ok", true}, {"secrets", list}};
    }
    if (op == "secret.rm") {
        const std::string name = stringField(request, "name");
        if (!tasksUsing(name).empty()) return failure("secret " + quote(name) + " is in use by a running task");
        if (auto ok = store_.remove(name); !ok) return failure(ok.error().message);
        log("secret " + name + " removed");
        return {{"ok", true}};
    }
    if (op == "task.ls") {
        json list = json::array();
        for (const auto& [id, task] : tasks_) list.push_back({{"id", id}, {"secrets", task.secrets}});
        return {{"ok", true}, {"tasks", list}};
    }
    if (op == "status") {
        json reply = {{"ok", true}, {"tasks", tasks_.size()}, {"source", config_.source},
                      {"kernel", platform::kernelFeatures().describe()}};
        if (cluster_) reply["cluster"] = clusterStatus();
        return reply;
    }
    return failure("unknown request " + quote(op.substr(0, 64)));
}

}  // namespace secretshim::plugin
