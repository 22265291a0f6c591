#include "plugin/agent/cluster_source.hpp"
#include "plugin/agent/log.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "mountfs/secret_ref.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

namespace asio = boost::asio;
using namespace secretshim::cluster;
using nlohmann::json;

namespace {

constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);


std::vector<std::string> sourcesOf(const std::string& specs) {
    std::vector<std::string> names;
    auto refs = mountfs::parseSecretRefs(specs);
    if (!refs) return names;
    for (const auto& r : *refs)
        if (std::find(names.begin(), names.end(), r.source) == names.end()) names.push_back(r.source);
    return names;
}

}  // namespace

ClusterSource::ClusterSource(asio::io_context& io, std::unique_ptr<EtcdClient> client, NodeKeyPair key,
                             std::string stateDir, std::string node, TrustedKeys admins, SerialFloor floor)
    : io_(io), client_(std::move(client)), key_(std::move(key)), stateDir_(std::move(stateDir)), node_(std::move(node)),
      prefix_(nodePrefix(node_)),
      admins_(std::move(admins)), floor_(std::move(floor)) {}

ClusterSource::~ClusterSource() { stop(); }

Result<std::unique_ptr<ClusterSource>> ClusterSource::create(asio::io_context& io, const AgentConfig& config) {
    const EtcdConfig& c = config.etcd;
    if (auto ok = checkName("node", c.node); !ok) return propagate(ok, "etcd.node");
    auto client = etcdClientFor(c);
    if (!client) return propagate(client);
    auto admins = TrustedKeys::load(c.adminKeys);
    if (!admins) return propagate(admins);
    if (admins->empty()) return fail("etcd.admin_keys: no admin key to check the cluster's records against");
    auto floor = SerialFloor::open(config.stateDir);
    if (!floor) return propagate(floor);
    auto key = NodeKeyPair::loadOrCreate(config.stateDir, std::string(kNodeKeyPairFile));
    if (!key) return propagate(key);
    return std::unique_ptr<ClusterSource>(new ClusterSource(io, std::move(*client), std::move(*key), config.stateDir, c.node,
                                                            std::move(*admins), std::move(*floor)));
}

void ClusterSource::start(Callbacks callbacks) {
    callbacks_ = std::move(callbacks);
    thread_ = std::thread([this] { run(); });
}

void ClusterSource::stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    client_->interruptWatch();
    thread_.join();
}

// The watch thread: a full read, then the watch from its revision + 1. A
// broken or silent stream resumes from the last revision on the next
// endpoint; after a whole round of endpoints failed the node counts as
// disconnected (and will read everything again); a compaction means a full
// read.
void ClusterSource::run() {
    std::int64_t last = 0;
    bool needRead = true;
    std::size_t failures = 0;
    auto backoff = std::chrono::milliseconds(100);
    const std::size_t round = client_->settings().endpoints.size();
    auto pause = [&] {
        for (auto slept = std::chrono::milliseconds(0); slept < backoff && !stop_; slept += std::chrono::milliseconds(20))
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        backoff = std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBackoff));
    };
    // The ids of the secrets this node holds a copy of: their published
    // versions are read, and their events passed on (every node watches
    // every secret's; the others are dropped here). `unread`: ids whose
    // published version a read failed for, read again at the next message.
    std::set<std::string> ids;
    std::set<std::string> unread;
    auto idOf = [](const KeyValue& kv) -> std::string {
        auto ref = parseNodeKey(kv.key);
        if (!ref || ref->kind != NodeKeyRef::Kind::secret) return {};
        auto s = decodeNodeSecret(kv.value);
        return s ? s->id : std::string();
    };
    const std::string published = publishedPrefix();
    while (!stop_) {
        if (needRead) {
            auto r = client_->range(prefix_, true);
            std::string failed = r ? "" : r.error().message;
            std::vector<KeyValue> kvs;  // the node's records, then the published versions
            if (r) {
                kvs = r->kvs;
                ids.clear();
                unread.clear();
                for (const auto& kv : r->kvs)
                    if (auto id = idOf(kv); !id.empty()) ids.insert(id);
                // At the same revision: the node's view is one point in time.
                for (const auto& id : ids) {
                    auto p = client_->range(publishedKey(id), false, r->revision);
                    if (!p) {
                        failed = p.error().message;
                        break;
                    }
                    kvs.insert(kvs.end(), p->kvs.begin(), p->kvs.end());
                }
            }
            if (!failed.empty()) {
                asio::post(io_, [this, why = failed] { markDisconnected(why); });
                pause();
                continue;
            }
            last = r->revision;
            needRead = false;
            failures = 0;
            backoff = std::chrono::milliseconds(100);
            asio::post(io_, [this, kvs = std::move(kvs), rev = r->revision]() mutable {
                applySnapshot(std::move(kvs), rev);
            });
        }
        auto end = client_->watch(
            {prefix_, published}, last + 1,
            [&](const WatchMessage& m) {
                std::int64_t top = 0;
                for (const auto& e : m.events) top = std::max(top, e.kv.modRevision);
                for (const auto& s : m.skipped) log("etcd: skipped an event: " + s, {.level = LogLevel::warning});
                std::vector<WatchEvent> events;
                for (const auto& e : m.events) {
                    if (e.kv.key.compare(0, published.size(), published) == 0) {
                        if (ids.count(e.kv.key.substr(published.size()))) events.push_back(e);
                        continue;
                    }
                    events.push_back(e);
                    if (e.type != WatchEvent::Type::put) continue;
                    if (auto id = idOf(e.kv); !id.empty() && ids.insert(id).second) unread.insert(id);
                }
                // A secret new to this node: its published version now (a
                // later one comes as an event; the same one again changes
                // nothing).
                for (auto it = unread.begin(); it != unread.end();) {
                    auto p = client_->range(publishedKey(*it), false);
                    if (!p) {
                        log("etcd: the published version of a secret was not read (" + p.error().message +
                            "): read again at the next message", {.level = LogLevel::warning});
                        break;
                    }
                    for (const auto& kv : p->kvs) events.push_back({WatchEvent::Type::put, kv});
                    it = unread.erase(it);
                }
                // A progress notification promises every event up to its
                // revision was sent.
                if (m.progress()) top = std::max(top, m.revision);
                last = std::max(last, top);
                failures = 0;
                backoff = std::chrono::milliseconds(100);
                asio::post(io_, [this, events = std::move(events), rev = last, at = std::chrono::steady_clock::now()]() mutable {
                    applyEvents(std::move(events), rev, at);
                });
            },
            stop_);
        if (stop_) break;
        if (end.reason == WatchEnd::Reason::compacted) {
            log(end.message + ": reading everything again", {.level = LogLevel::notice});
            needRead = true;
            continue;
        }
        log(end.message, {.level = LogLevel::warning});
        if (++failures >= round) {
            const std::string why = end.message;
            asio::post(io_, [this, why] { markDisconnected(why); });
            needRead = true;
            failures = 0;
            pause();
        }
    }
}

void ClusterSource::markContact(std::int64_t revision) {
    if (!connected_) log("etcd: connected (" + client_->endpoint() + ", revision " + std::to_string(revision) + ")");
    connected_ = true;
    revision_ = std::max(revision_, revision);
    lastContact_ = std::chrono::steady_clock::now();
}

void ClusterSource::markDisconnected(const std::string& why) {
    lastError_ = why;
    if (!connected_ && !synced_) return;
    connected_ = false;
    synced_ = false;
    // Keep only what running tasks use: a new container cannot be checked
    // against the control plane now.
    const std::set<std::string> running = callbacks_.runningTasks ? callbacks_.runningTasks() : std::set<std::string>{};
    std::set<std::string> keep;
    for (auto it = tasks_.begin(); it != tasks_.end();) {
        if (running.count(it->first)) {
            for (const auto& n : sourcesOf(it->second.secrets)) keep.insert(n);
            ++it;
        } else {
            it = tasks_.erase(it);
        }
    }
    std::size_t dropped = 0;
    std::set<std::string> keepIds;
    for (auto it = copies_.begin(); it != copies_.end();) {
        if (keep.count(it->first)) {
            for (const auto& [version, copy] : it->second) keepIds.insert(copy.id);
            ++it;
        } else {
            it = copies_.erase(it);
            ++dropped;
        }
    }
    for (auto it = published_.begin(); it != published_.end();)
        it = keepIds.count(it->first) ? std::next(it) : published_.erase(it);
    log("etcd: disconnected (" + why + "); kept " + std::to_string(tasks_.size()) + " running task(s), dropped " +
        std::to_string(dropped) + " unused secret(s)", {.level = LogLevel::warning});
}

// A record an admin did not sign, or signed before the one this node last
// accepted at its key (put back by whoever can write to etcd: a replay after
// a delete, or after an agent restart), is refused and logged by key; the
// running containers keep what they have.
template <class Record>
bool ClusterSource::trusted(const std::string& key, const Record& record) const {
    if (auto ok = admins_.verify(key, record); !ok) {
        log("etcd: refused key " + quote(key) + ": " + ok.error().message, {.level = LogLevel::warning});
        return false;
    }
    if (const std::uint64_t floor = floor_.at(key); record.sig.serial < floor) {
        log("etcd: refused key " + quote(key) + ": serial " + std::to_string(record.sig.serial) +
                " is older than serial " + std::to_string(floor) + " this node accepted there (a replayed record)",
            {.level = LogLevel::warning});
        return false;
    }
    return true;
}

void ClusterSource::saveFloor() {
    if (auto ok = floor_.save(); !ok)
        log("etcd: the serials of accepted records were not saved (" + ok.error().message +
            "): after a restart this node could take back an older record", {.level = LogLevel::err});
}

const NodeSecret* ClusterSource::current(const std::string& name) const {
    const auto it = copies_.find(name);
    if (it == copies_.end()) return nullptr;
    for (auto v = it->second.rbegin(); v != it->second.rend(); ++v) {
        const auto p = published_.find(v->second.id);
        if (p != published_.end() && p->second == v->first) return &v->second;
    }
    return nullptr;
}

// What a change did to the copy a name's containers get: they are told
// when it is another one (a rotation), and, once the first read is done,
// when there was none (its earlier copy was deleted or refused; before
// that read, re-adopted containers are brought up to date whole). The same
// version sealed again (a task assigned again) changes nothing.
void ClusterSource::noteCurrent(const std::string& name, const NodeSecret* before, std::set<std::string>& secrets) {
    const NodeSecret* after = current(name);
    if (!after) return;
    if (before ? !(before->id == after->id && before->version == after->version) : synced_) secrets.insert(name);
}

void ClusterSource::applyPublished(const KeyValue& kv, std::set<std::string>& secrets) {
    const std::string id = kv.key.substr(publishedPrefix().size());
    auto p = decodePublished(kv.value);
    if (!p || p->id != id) {
        log("etcd: skipped key " + quote(kv.key) + ": " + (p ? "the record names another secret" : p.error().message),
            {.level = LogLevel::warning});
        return;
    }
    if (!trusted(kv.key, *p)) return;
    floor_.raise(kv.key, p->sig.serial);
    // The names whose copies carry this id (one, but for a name removed
    // and created again).
    std::vector<std::pair<std::string, std::optional<NodeSecret>>> names;
    for (const auto& [name, versions] : copies_)
        for (const auto& [version, copy] : versions)
            if (copy.id == id) {
                const NodeSecret* before = current(name);
                names.emplace_back(name, before ? std::optional<NodeSecret>(*before) : std::nullopt);
                break;
            }
    published_[id] = p->version;
    for (const auto& [name, before] : names) {
        noteCurrent(name, before ? &*before : nullptr, secrets);
        if (!current(name))
            log("etcd: secret " + quote(name) + " is published at version " + std::to_string(p->version) +
                ", which this node holds no copy of", {.level = LogLevel::warning});
    }
}

void ClusterSource::applyPut(const KeyValue& kv, std::set<std::string>& tasks, std::set<std::string>& secrets) {
    if (kv.key.compare(0, publishedPrefix().size(), publishedPrefix()) == 0) return applyPublished(kv, secrets);
    auto ref = parseNodeKey(kv.key);
    if (!ref || ref->node != node_) {
        log("etcd: skipped key " + quote(kv.key) + ": " + (ref ? "not this node's" : ref.error().message),
            {.level = LogLevel::warning});
        return;
    }
    if (ref->kind == NodeKeyRef::Kind::task) {
        auto t = decodeTask(kv.value);
        if (!t || t->task != ref->name) {
            log("etcd: skipped key " + quote(kv.key) + ": " + (t ? "the record names another task" : t.error().message),
                {.level = LogLevel::warning});
            return;
        }
        if (auto refs = mountfs::parseSecretRefs(t->secrets); !refs) {
            log("etcd: skipped key " + quote(kv.key) + ": " + refs.error().message, {.level = LogLevel::warning});
            return;
        }
        if (!trusted(kv.key, *t)) return;
        floor_.raise(kv.key, t->sig.serial);
        const auto old = tasks_.find(ref->name);
        if (old == tasks_.end() || old->second.secrets != t->secrets || old->second.signal != t->signal ||
            !(old->second.identity == t->identity))
            tasks.insert(ref->name);
        tasks_[ref->name] = std::move(*t);
        return;
    }
    auto s = decodeNodeSecret(kv.value);
    if (!s || s->name != ref->name || s->version != ref->version) {
        log("etcd: skipped key " + quote(kv.key) + ": " +
            (s ? "the record names another secret or version" : s.error().message), {.level = LogLevel::warning});
        return;
    }
    if (!trusted(kv.key, *s)) return;
    // Check now that it decrypts: a copy that does not (tampered, sealed to
    // another node) is skipped and the old one kept. One sealed to the
    // node's next key (its key being rotated: node keygen --rotate, then
    // node add --replace) opens with that key, read now if not yet.
    if (!open(*s)) {
        if (!next_)
            if (auto next = NodeKeyPair::load(stateDir_, std::string(kNextNodeKeyPairFile))) {
                next_.emplace(std::move(*next));
                log("etcd: " + std::string(kNextNodeKeyPairFile) + " is there: copies sealed to it open too",
                    {.level = LogLevel::notice});
            }
        if (!next_ || !open(*s)) {
            log("etcd: skipped key " + quote(kv.key) + ": it does not decrypt with this node's key",
                {.level = LogLevel::warning});
            return;
        }
    }
    floor_.raise(kv.key, s->sig.serial);
    const NodeSecret* now = current(ref->name);
    const std::optional<NodeSecret> before = now ? std::optional<NodeSecret>(*now) : std::nullopt;
    copies_[ref->name][ref->version] = std::move(*s);
    noteCurrent(ref->name, before ? &*before : nullptr, secrets);
}

void ClusterSource::applyDelete(const std::string& key, std::set<std::string>& tasks) {
    if (key.compare(0, publishedPrefix().size(), publishedPrefix()) == 0) {
        published_.erase(key.substr(publishedPrefix().size()));  // running views keep their files
        return;
    }
    auto ref = parseNodeKey(key);
    if (!ref) return;
    if (ref->kind == NodeKeyRef::Kind::task) {
        if (tasks_.erase(ref->name)) tasks.insert(ref->name);
        return;
    }
    // Running views keep their files until revoked by the assignment.
    const auto it = copies_.find(ref->name);
    if (it == copies_.end()) return;
    const auto v = it->second.find(ref->version);
    if (v == it->second.end()) return;
    // A version below the published one is never used again (a published
    // version only grows): its serial need not be kept.
    const auto p = published_.find(v->second.id);
    if (p != published_.end() && ref->version < p->second) floor_.forget(key);
    it->second.erase(v);
    if (it->second.empty()) copies_.erase(it);
}

void ClusterSource::applySnapshot(std::vector<KeyValue> kvs, std::int64_t revision) {
    std::set<std::string> tasks;
    std::set<std::string> secrets;
    std::set<std::string> seenTasks;
    std::set<std::pair<std::string, std::uint64_t>> seenCopies;
    std::set<std::string> seenIds;
    // Which copy each name's containers get, before: a snapshot is judged
    // as a whole (a published version may come before its copy).
    std::map<std::string, std::optional<NodeSecret>> before;
    for (const auto& [name, versions] : copies_) {
        const NodeSecret* now = current(name);
        before[name] = now ? std::optional<NodeSecret>(*now) : std::nullopt;
    }
    std::set<std::string> unused;
    for (const auto& kv : kvs) {
        applyPut(kv, tasks, unused);
        if (kv.key.compare(0, publishedPrefix().size(), publishedPrefix()) == 0)
            seenIds.insert(kv.key.substr(publishedPrefix().size()));
        else if (auto ref = parseNodeKey(kv.key))
            ref->kind == NodeKeyRef::Kind::task ? void(seenTasks.insert(ref->name))
                                                : void(seenCopies.insert({ref->name, ref->version}));
    }
    for (auto it = tasks_.begin(); it != tasks_.end();) {
        if (seenTasks.count(it->first)) {
            ++it;
        } else {
            tasks.insert(it->first);
            it = tasks_.erase(it);
        }
    }
    // A running task that is gone (unassigned while the node was cut off,
    // or while the agent was down: its containers were re-adopted).
    if (callbacks_.runningTasks)
        for (const auto& task : callbacks_.runningTasks())
            if (!seenTasks.count(task)) tasks.insert(task);
    for (auto it = copies_.begin(); it != copies_.end();) {
        for (auto v = it->second.begin(); v != it->second.end();)
            v = seenCopies.count({it->first, v->first}) ? std::next(v) : it->second.erase(v);
        it = it->second.empty() ? copies_.erase(it) : std::next(it);
    }
    for (auto it = published_.begin(); it != published_.end();)
        it = seenIds.count(it->first) ? std::next(it) : published_.erase(it);
    for (const auto& [name, versions] : copies_) {
        const auto was = before.find(name);
        noteCurrent(name, was == before.end() || !was->second ? nullptr : &*was->second, secrets);
    }
    saveFloor();
    synced_ = true;
    markContact(revision);
    notify(tasks, secrets);
}

void ClusterSource::applyEvents(std::vector<WatchEvent> events, std::int64_t revision,
                                std::chrono::steady_clock::time_point received) {
    const auto start = std::chrono::steady_clock::now();
    std::set<std::string> tasks;
    std::set<std::string> secrets;
    for (const auto& e : events) {
        if (e.type == WatchEvent::Type::put)
            applyPut(e.kv, tasks, secrets);
        else
            applyDelete(e.kv.key, tasks);
    }
    saveFloor();
    markContact(revision);
    notify(tasks, secrets);
    if (trace_ && !events.empty()) {
        const auto ns = [](std::chrono::steady_clock::time_point t) {
            return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
        };
        log("etcd: trace revision " + std::to_string(revision) + " events " + std::to_string(events.size()) +
            " received_ns " + ns(received) + " start_ns " + ns(start) + " applied_ns " +
            ns(std::chrono::steady_clock::now()));
    }
}

void ClusterSource::notify(const std::set<std::string>& tasks, const std::set<std::string>& secrets) {
    for (const auto& name : secrets)
        if (callbacks_.secretChanged) callbacks_.secretChanged(name);
    for (const auto& task : tasks)
        if (callbacks_.taskChanged) callbacks_.taskChanged(task);
}

Result<void> ClusterSource::unreachable(const std::string& what) const {
    return failWith(ENOTCONN, "control plane unreachable: " + what + " (" + lastError_ + ")");
}

const TaskAssignment* ClusterSource::assignment(const std::string& task) const {
    const auto it = tasks_.find(task);
    return it == tasks_.end() ? nullptr : &it->second;
}

Result<const NodeSecret*> ClusterSource::copyOf(const std::string& name) const {
    if (const NodeSecret* copy = current(name)) return copy;
    if (!connected_) return tl::unexpected(unreachable("secret " + quote(name) + " is not held").error());
    if (copies_.count(name))
        return failWith(ENOENT, "secret " + quote(name) + " has no copy of its published version for node " +
                                    quote(node_) + " yet");
    return failWith(ENOENT, "secret " + quote(name) + " has no copy for node " + quote(node_) + " yet");
}

Result<SecureBuffer> ClusterSource::open(const NodeSecret& s) const {
    const SecretBinding binding{node_, s.name, s.id, s.version};
    auto plain = key_.open(s.sealed, binding);
    if (!plain && next_) plain = next_->open(s.sealed, binding);
    if (!plain) return fail("secret " + quote(s.name) + ": its copy does not decrypt with this node's key");
    return plain;
}

Result<SecureBuffer> ClusterSource::value(const std::string& name) {
    auto copy = copyOf(name);
    if (!copy) return propagate(copy);
    return open(**copy);
}

namespace {

// A task's values, each decrypted only when its file in the view is
// written, into a locked buffer wiped right after: sized from the copies
// (GCM's ciphertext is as long as the plaintext) so that the agent's limits
// are checked before anything is decrypted. The copies are the source's,
// unchanged while the view is built (on the io thread, as every change is).
class CopyPayloads final : public mountfs::PayloadSource {
public:
    CopyPayloads(const ClusterSource& source, std::vector<const NodeSecret*> copies)
        : source_(source), copies_(std::move(copies)) {}
    std::size_t count() const override { return copies_.size(); }
    std::size_t size(std::size_t index) const override { return copies_[index]->sealed.ciphertext.size(); }
    Result<void> produce(std::size_t index, mountfs::PayloadSink& sink) const override {
        auto plain = source_.open(*copies_[index]);
        if (!plain) return propagate(plain);
        if (plain->size() != size(index)) return fail("secret " + quote(copies_[index]->name) + ": a copy of the wrong size");
        return sink.write(plain->span());
    }

private:
    const ClusterSource& source_;
    std::vector<const NodeSecret*> copies_;
};

}  // namespace

// A container's secrets are exactly its task's assignment (its own
// io.secretshim.secrets annotation is ignored and cannot widen it), and
// only if the task is bound to who the container is. A task not assigned
// here gets the same line as a task bound to someone else.
Result<GrantedSecrets> ClusterSource::grant(const plugin::WorkloadIdentity& identity, const std::string&,
                                            const std::string& task) {
    if (task.empty())
        return fail("this node takes secrets from the cluster: the container needs the annotation " +
                    std::string(kTaskAnnotation));
    if (auto ok = checkName("task", task); !ok) return propagate(ok);
    const TaskAssignment* a = assignment(task);
    if (!a && (!connected_ || !synced_))
        return tl::unexpected(unreachable("cannot check task " + quote(task) + "'s assignment").error());
    if (!a || !a->identity.matches(identity)) return notGranted("task " + quote(task), identity);
    auto refs = mountfs::parseSecretRefs(a->secrets);
    if (!refs) return propagate(refs);  // checked when the record was read
    std::vector<const NodeSecret*> copies;
    for (const auto& ref : *refs) {
        auto copy = copyOf(ref.source);
        if (!copy) return propagate(copy, "task " + quote(task));
        copies.push_back(*copy);
    }
    GrantedSecrets g;
    g.specs = a->secrets;
    g.payloads = std::make_unique<CopyPayloads>(*this, std::move(copies));
    g.refs = std::move(*refs);
    g.claim = task;
    g.maxHolders = a->maxContainers;
    return g;
}

json ClusterSource::status() const {
    json s = {{"node", node_},
              {"connected", connected_},
              {"endpoint", client_->endpoint()},
              {"revision", revision_},
              {"tasks", tasks_.size()},
              {"secrets", copies_.size()}};
    if (lastContact_ != std::chrono::steady_clock::time_point{})
        s["since_contact_ms"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - lastContact_).count();
    if (!lastError_.empty()) s["last_error"] = lastError_;
    return s;
}

}  // namespace secretshim::plugin
