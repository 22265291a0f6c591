#include "plugin/cluster/cluster_admin.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <map>
#include <set>

#include "mountfs/secret_ref.hpp"
#include "mountfs/view_layout.hpp"
#include "plugin/cluster/base64.hpp"
#include "plugin/cluster/model.hpp"
#include "plugin/store/random_hex.hpp"

namespace secretshim::cluster {

using plugin::randomHex;
using nlohmann::json;

namespace {

std::vector<std::string> sourcesOf(const std::vector<mountfs::SecretRef>& refs) {
    std::vector<std::string> names;
    for (const auto& r : refs)
        if (std::find(names.begin(), names.end(), r.source) == names.end()) names.push_back(r.source);
    return names;
}

// The secrets a record's specs name (none if they do not parse: a record
// is checked when it is written).
std::vector<std::string> sourcesOf(const std::string& specs) {
    auto refs = mountfs::parseSecretRefs(specs);
    return refs ? sourcesOf(*refs) : std::vector<std::string>{};
}

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// A guarded write that lost a race is redone from a fresh read this often
// before the command gives up with one line.
constexpr int kAttempts = 5;

// An assignment's switch compares each of its secrets' masters (a removed
// one included, which a range compare would not see) and writes a holder
// record for each, in one transaction: etcd takes 128 compares and 128
// operations in one.
constexpr std::size_t kMaxTaskSecrets = 100;

Result<void> checkSourceCount(const std::vector<std::string>& sources) {
    if (sources.size() <= kMaxTaskSecrets) return {};
    return fail("a task holds " + std::to_string(sources.size()) + " secrets: at most " +
                std::to_string(kMaxTaskSecrets) + " (one etcd transaction guards them all)");
}

// The value at `key` in a txn's failure ranges, if any.
const KeyValue* found(const WriteResult& w) {
    for (const auto& r : w.ranges)
        if (!r.kvs.empty()) return &r.kvs.front();
    return nullptr;
}

Result<MasterSecret> readMaster(EtcdClient& c, const std::string& name, std::int64_t* modRevision = nullptr) {
    auto r = c.range(masterKey(name), false);
    if (!r) return propagate(r);
    if (r->kvs.empty()) return failWith(ENOENT, "secret " + quote(name) + " not found");
    auto m = decodeMaster(r->kvs[0].value);
    if (!m) return propagate(m, "secret " + quote(name));
    if (modRevision) *modRevision = r->kvs[0].modRevision;
    return m;
}

}  // namespace

Result<const ClusterKey*> ClusterAdmin::clusterKey() {
    if (!key_) return fail("this command needs the cluster key (--cluster-key or etcd.cluster_key)");
    return &*key_;
}

Result<const AdminSigningKey*> ClusterAdmin::signingKey() {
    if (!signer_) return fail("this command needs the admin signing key (--signing-key or etcd.signing_key)");
    return &*signer_;
}

Result<std::string> ClusterAdmin::nodePublicKey(const std::string& node) {
    const std::string key = registrationKey(node);
    auto r = client_->range(key, false);
    if (!r) return propagate(r);
    if (r->kvs.empty()) return fail("node " + quote(node) + " is not registered (secretshimctl node add)");
    auto reg = decodeRegistration(r->kvs[0].value);
    if (!reg) return propagate(reg, "node " + quote(node));
    if (auto ok = trusted_.verify(key, *reg); !ok)
        return fail("node " + quote(node) + "'s registration is not trusted: " + ok.error().message +
                    " (check the node's key, then register it again: secretshimctl node add)");
    return reg->publicKey;
}

Result<void> ClusterAdmin::addNode(const std::string& node, const PublicKey& publicKey, bool replace) {
    if (auto ok = checkName("node", node); !ok) return ok;
    if (auto ok = registerNode(node, publicKey, replace); !ok) return ok;
    if (!replace) return {};
    // Each of its tasks assigned again: every copy sealed to the key now
    // registered (also when a first --replace stopped halfway). Only what
    // an admin signed: a record planted by whoever can write to etcd must
    // not come out of this signed by us.
    auto tasks = client_->range(nodePrefix(node) + "tasks/", true);
    if (!tasks) return propagate(tasks);
    for (const auto& kv : tasks->kvs) {
        auto task = decodeTask(kv.value);
        if (!task) return propagate(task, "node " + quote(node) + ": " + quote(kv.key));
        if (auto ok = trusted_.verify(kv.key, *task); !ok)
            return fail("node " + quote(node) + ": the task record " + quote(kv.key) +
                        " is not signed by a trusted admin key (" + ok.error().message +
                        "): not assigned again; check it, then task assign or unassign it");
        // A task of a service stays one.
        std::string service;
        auto placed = client_->range(taskIndexKey(task->task), false);
        if (!placed) return propagate(placed);
        if (!placed->kvs.empty())
            if (auto p = decodePlacement(placed->kvs[0].value)) service = p->service;
        if (auto ok = assignOnNode(node, *task, service, {}); !ok) return ok;
    }
    return {};
}

Result<void> ClusterAdmin::registerNode(const std::string& node, const PublicKey& publicKey, bool replace) {
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    if (auto ok = client_->ensureReader(node, {nodePrefix(node), publishedPrefix()}); !ok) return ok;
    const std::string key = registrationKey(node);
    const std::string pub(publicKey.begin(), publicKey.end());
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        auto r = client_->range(key, false);
        if (!r) return propagate(r);
        std::int64_t modRevision = 0;  // 0: absent
        std::uint64_t serial = 0;
        if (!r->kvs.empty()) {
            auto reg = decodeRegistration(r->kvs[0].value);
            if (reg && reg->publicKey != pub && !replace)
                return fail("node " + quote(node) +
                            " is already registered with another key (a reinstalled node: node add --replace)");
            // Already so (or our own write, retried); signed by another key
            // (one being rotated away), it is signed again with this one.
            if (reg && reg->publicKey == pub && reg->sig.signer == (*signer)->id() && trusted_.verify(key, *reg))
                return {};
            modRevision = r->kvs[0].modRevision;
            if (reg) serial = reg->sig.serial;
        }
        NodeRegistration fresh{node, pub, {}};
        if (auto ok = (*signer)->sign(key, fresh, nextSerial(serial)); !ok) return ok;
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(key, modRevision)}},
                               {"success", {txnPut(key, encodeRegistration(fresh))}},
                               {"failure", json::array()}});
        if (!w) return propagate(w);
        if (w->succeeded) return {};
    }
    return fail("node " + quote(node) + ": its registration kept changing (" + std::to_string(kAttempts) +
                " attempts); run the command again");
}

Result<std::int64_t> ClusterAdmin::removeNode(const std::string& node) {
    if (auto ok = checkName("node", node); !ok) return propagate(ok);
    if (auto ok = client_->removeReader(node); !ok) return propagate(ok);
    // Its tasks' placements: those that still name this node.
    auto mine = nodeTasks(node);
    if (!mine) return propagate(mine);
    std::int64_t deleted = 0;
    for (const auto& a : *mine) {
        const std::string indexKey = taskIndexKey(a.task.task);
        auto placed = client_->range(indexKey, false);
        if (!placed) return propagate(placed);
        if (placed->kvs.empty()) continue;
        auto p = decodePlacement(placed->kvs[0].value);
        if (!p || p->node != node) continue;
        json ops = json::array({txnDelete(indexKey)});
        for (const auto& name : a.sources) ops.push_back(txnDelete(holderKey(name, a.task.task)));
        auto w = client_->txn({{"compare", {txnModRevision(indexKey, placed->kvs[0].modRevision)}},
                               {"success", ops},
                               {"failure", json::array()}});
        if (!w) return propagate(w);
        deleted += w->deleted;
    }
    auto prefix = client_->remove(nodePrefix(node), true);
    if (!prefix) return propagate(prefix);
    auto registration = client_->remove(registrationKey(node));
    if (!registration) return propagate(registration);
    return deleted + prefix->deleted + registration->deleted;
}

Result<json> ClusterAdmin::listNodes() {
    auto r = client_->range(registrationsPrefix(), true);
    if (!r) return propagate(r);
    json out = json::array();
    for (const auto& kv : r->kvs) {
        auto reg = decodeRegistration(kv.value);
        if (reg) out.push_back({{"node", reg->node}, {"public_key", base64Encode(reg->publicKey)}});
    }
    return out;
}

Result<std::string> ClusterAdmin::createSecret(const std::string& name, const SecureBuffer& value) {
    if (auto ok = checkName("secret", name); !ok) return propagate(ok);
    auto key = clusterKey();
    if (!key) return propagate(key);
    auto id = randomHex(16);
    if (!id) return propagate(id);
    MasterSecret m{name, *id, 1, now(), now(), value.size(), {}};
    auto sealed = (*key)->seal(value.span(), {"", name, *id, 1});
    if (!sealed) return propagate(sealed);
    m.sealed = std::move(*sealed);
    const std::string k = masterKey(name);
    auto w = client_->txn({{"compare", {txnAbsent(k)}}, {"success", {txnPut(k, encodeMaster(m))}}, {"failure", {txnRange(k)}}});
    if (!w) return propagate(w);
    if (w->succeeded) return *id;
    const KeyValue* existing = found(*w);
    auto prior = existing ? decodeMaster(existing->value) : fail("gone");
    if (prior && prior->id == *id) return *id;  // our own write, retried
    return fail("secret " + quote(name) + " already exists");
}

Result<std::vector<ClusterAdmin::Assignment>> ClusterAdmin::assignments(std::int64_t* revision, bool verify) {
    auto r = client_->range(tasksPrefix(), true);
    if (!r) return propagate(r);
    if (revision) *revision = r->revision;
    std::vector<Assignment> out;
    for (const auto& kv : r->kvs) {
        auto p = decodePlacement(kv.value);
        if (!p) continue;
        out.push_back({p->node, p->task, sourcesOf(p->task.secrets), p->sig.serial, verify && trusted_.verify(kv.key, *p),
                       p->service});
    }
    return out;
}

Result<std::vector<ClusterAdmin::Assignment>> ClusterAdmin::nodeTasks(const std::string& node, std::int64_t* revision) {
    auto r = client_->range(nodePrefix(node) + "tasks/", true);
    if (!r) return propagate(r);
    if (revision) *revision = r->revision;
    std::vector<Assignment> out;
    for (const auto& kv : r->kvs) {
        auto t = decodeTask(kv.value);
        if (!t) continue;
        auto sources = sourcesOf(t->secrets);
        const std::uint64_t serial = t->sig.serial;
        out.push_back({node, std::move(*t), std::move(sources), serial, false, {}});
    }
    return out;
}

Result<std::vector<Holder>> ClusterAdmin::holdersOf(const std::string& name, std::int64_t* revision) {
    auto r = client_->range(holdersPrefix(name), true);
    if (!r) return propagate(r);
    if (revision) *revision = r->revision;
    std::vector<Holder> out;
    for (const auto& kv : r->kvs) {
        auto h = decodeHolder(kv.value);
        if (h && h->secret == name && kv.key == holderKey(name, h->task) && trusted_.verify(kv.key, *h)) {
            out.push_back(std::move(*h));
            continue;
        }
        return fail("the holder record " + quote(kv.key) +
                    " is not an admin's (malformed, or not signed by a trusted admin key): no copy sealed for it "
                    "(check it, then task assign or unassign its task)");
    }
    return out;
}

Result<std::map<std::string, std::string>> ClusterAdmin::publicKeys(const std::set<std::string>& nodes) {
    std::map<std::string, std::string> out;
    // Few nodes: one read each; many: the registry at once.
    if (nodes.size() <= 16) {
        for (const auto& node : nodes) {
            auto pub = nodePublicKey(node);
            if (!pub) return propagate(pub);
            out[node] = std::move(*pub);
        }
        return out;
    }
    auto r = client_->range(registrationsPrefix(), true);
    if (!r) return propagate(r);
    for (const auto& kv : r->kvs) {
        auto reg = decodeRegistration(kv.value);
        if (!reg || !nodes.count(reg->node) || kv.key != registrationKey(reg->node)) continue;
        if (auto ok = trusted_.verify(kv.key, *reg); !ok)
            return fail("node " + quote(reg->node) + "'s registration is not trusted: " + ok.error().message +
                        " (check the node's key, then register it again: secretshimctl node add)");
        out[reg->node] = std::move(reg->publicKey);
    }
    for (const auto& node : nodes)
        if (!out.count(node)) return fail("node " + quote(node) + " is not registered (secretshimctl node add)");
    return out;
}

Result<bool> ClusterAdmin::writeBatches(const json& compares, const std::vector<json>& ops) {
    std::size_t i = 0;
    while (i < ops.size()) {
        json batch = json::array();
        std::size_t bytes = 0;
        while (i < ops.size() && batch.size() < batchOps_) {
            const std::size_t size = ops[i].dump().size();
            if (!batch.empty() && bytes + size > batchBytes_) break;
            bytes += size;
            batch.push_back(ops[i++]);
        }
        beforeCommit();
        auto w = client_->txn({{"compare", compares}, {"success", batch}, {"failure", json::array()}});
        if (!w) return propagate(w);
        if (!w->succeeded) return false;
    }
    return true;
}

Result<ClusterAdmin::Rekeyed> ClusterAdmin::rekey(const ClusterKey& next) {
    auto key = clusterKey();
    if (!key) return propagate(key);
    auto all = client_->range(mastersPrefix(), true);
    if (!all) return propagate(all);
    Rekeyed out;
    for (const auto& first : all->kvs) {
        const std::string name = first.key.substr(mastersPrefix().size());
        bool done = false;
        for (int attempt = 0; attempt < kAttempts && !done; ++attempt) {
            std::int64_t modRevision = 0;
            auto master = readMaster(*client_, name, &modRevision);
            if (!master && master.error().code == ENOENT) {  // removed meanwhile
                done = true;
                break;
            }
            if (!master) return propagate(master);
            const SecretBinding binding{"", name, master->id, master->version};
            if (next.open(master->sealed, binding)) {
                ++out.already;
                done = true;
                break;
            }
            auto plain = (*key)->open(master->sealed, binding);
            if (!plain) return fail("secret " + quote(name) + ": neither the cluster key nor the new one decrypts it");
            auto sealed = next.seal(plain->span(), binding);
            if (!sealed) return propagate(sealed);
            MasterSecret fresh = *master;
            fresh.sealed = *sealed;
            beforeCommit();
            auto w = client_->txn({{"compare", {txnModRevision(masterKey(name), modRevision)}},
                                   {"success", {txnPut(masterKey(name), encodeMaster(fresh))}},
                                   {"failure", json::array()}});
            if (!w) return propagate(w);
            if (w->succeeded) {
                ++out.sealed;
                done = true;
            }
        }
        if (!done)
            return fail("secret " + quote(name) + " kept changing (" + std::to_string(kAttempts) +
                        " attempts); run the command again");
    }
    return out;
}

// A rotation: claim it in the master (its mod_revision changes, and every
// write below compares it: a later rotation, a rekey or an rm stops this
// one), write a copy of the new version for every node whose tasks use the
// secret, in batches within etcd's limits, then switch the master and the
// published version in one transaction guarded by the claim and by the
// secret's holders read (a task assigned meanwhile gets its copy first). Nodes use
// only the published version: an admin stopped before the switch leaves
// every node on the old one (the next rotation takes the claim over), and
// after it every node holds the new one. The old versions' copies are
// deleted last.
Result<std::uint64_t> ClusterAdmin::rotateSecret(const std::string& name, const SecureBuffer& value) {
    if (auto ok = checkName("secret", name); !ok) return propagate(ok);
    auto key = clusterKey();
    if (!key) return propagate(key);
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    const std::string k = masterKey(name);
    auto changed = [&] {
        return fail("secret " + quote(name) +
                    " changed while rotating it (another admin's rotation, a rekey or an rm): run the command again");
    };

    MasterSecret master;
    std::int64_t claimed = 0;  // the master's mod_revision once claimed
    for (int attempt = 0; claimed == 0; ++attempt) {
        if (attempt == kAttempts) return changed();
        std::int64_t modRevision = 0;
        auto m = readMaster(*client_, name, &modRevision);
        if (!m) return propagate(m);
        master = std::move(*m);
        master.staging = master.version + 1;
        master.stagingSerial = nextSerial(master.stagingSerial);
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(k, modRevision)}},
                               {"success", {txnPut(k, encodeMaster(master))}},
                               {"failure", json::array()}});
        if (!w) return propagate(w);
        if (w->succeeded) claimed = w->revision;
    }
    const std::uint64_t version = master.staging;
    auto sealed = (*key)->seal(value.span(), {"", name, master.id, version});
    if (!sealed) return propagate(sealed);

    std::set<std::string> staged;  // nodes that hold a copy of `version`
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        std::int64_t scanned = 0;
        auto holders = holdersOf(name, &scanned);
        if (!holders) return propagate(holders);
        std::set<std::string> fresh;
        for (const auto& h : *holders)
            if (!staged.count(h.node)) fresh.insert(h.node);
        auto keys = publicKeys(fresh);
        if (!keys) return propagate(keys);
        std::vector<json> ops;
        for (const auto& [node, pub] : *keys) {
            auto copy = sealForNode({reinterpret_cast<const unsigned char*>(pub.data()), pub.size()}, value.span(),
                                    {node, name, master.id, version});
            if (!copy) return propagate(copy);
            NodeSecret record{name, master.id, version, std::move(*copy), {}};
            const std::string copyKey = nodeSecretKey(node, name, version);
            if (auto ok = (*signer)->sign(copyKey, record, master.stagingSerial); !ok) return propagate(ok);
            ops.push_back(txnPut(copyKey, encodeNodeSecret(record)));
        }
        auto written = writeBatches(json::array({txnModRevision(k, claimed)}), ops);
        if (!written) return propagate(written);
        if (!*written) return changed();
        staged.insert(fresh.begin(), fresh.end());

        // The switch.
        auto pointer = client_->range(publishedKey(master.id), false);
        if (!pointer) return propagate(pointer);
        std::uint64_t pointerSerial = 0;
        if (!pointer->kvs.empty())
            if (auto p = decodePublished(pointer->kvs[0].value)) pointerSerial = p->sig.serial;
        Published published{master.id, version, {}};
        if (auto ok = (*signer)->sign(publishedKey(master.id), published, nextSerial(pointerSerial)); !ok)
            return propagate(ok);
        MasterSecret next = master;
        next.version = version;
        next.staging = 0;
        next.updated = now();
        next.size = value.size();
        next.sealed = *sealed;
        beforeCommit();
        auto w = client_->txn(
            {{"compare", {txnModRevision(k, claimed), txnUnchangedSince(holdersPrefix(name), scanned)}},
             {"success", {txnPut(k, encodeMaster(next)), txnPut(publishedKey(master.id), encodePublished(published))}},
             {"failure", {txnRange(k)}}});
        if (!w) return propagate(w);
        if (!w->succeeded) {
            const KeyValue* current = found(*w);
            if (!current || current->modRevision != claimed) return changed();
            continue;  // a task placed meanwhile: its copy first
        }
        // The old versions' copies: what a stop here leaves is deleted by
        // the next rotation, or when the task leaves the node.
        std::vector<json> cleanup;
        for (const auto& node : staged)
            cleanup.push_back(txnDeleteRange(nodeSecretPrefix(node, name), nodeSecretKey(node, name, version)));
        (void)writeBatches(json::array(), cleanup);
        return version;
    }
    return fail("secret " + quote(name) + ": tasks kept being placed while rotating it (" +
                std::to_string(kAttempts) + " attempts); run the command again");
}

Result<json> ClusterAdmin::listSecrets(const std::string& only) {
    auto r = client_->range(only.empty() ? mastersPrefix() : masterKey(only), only.empty());
    if (!r) return propagate(r);
    auto all = assignments();
    if (!all) return propagate(all);
    json out = json::array();
    for (const auto& kv : r->kvs) {
        auto m = decodeMaster(kv.value);
        if (!m) continue;
        json tasks = json::array();
        for (const auto& a : *all)
            if (std::find(a.sources.begin(), a.sources.end(), m->name) != a.sources.end())
                tasks.push_back(a.node + "/" + a.task.task);
        json entry = {{"name", m->name}, {"id", m->id}, {"version", m->version}, {"size", m->size},
                      {"created", m->created}, {"updated", m->updated}, {"tasks", tasks}};
        // A rotation under way, or one that stopped before its switch (the
        // next rotation takes it over).
        if (m->staging != 0) entry["staging"] = m->staging;
        out.push_back(std::move(entry));
    }
    if (!only.empty() && out.empty()) return fail("secret " + quote(only) + " not found");
    return out;
}

Result<void> ClusterAdmin::removeSecret(const std::string& name) {
    if (auto ok = checkName("secret", name); !ok) return ok;
    const std::string k = masterKey(name);
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        std::int64_t modRevision = 0;
        auto master = readMaster(*client_, name, &modRevision);
        if (!master && master.error().code == ENOENT && attempt > 0) return {};  // removed meanwhile
        if (!master) return propagate(master);
        auto holders = client_->range(holdersPrefix(name), true);
        if (!holders) return propagate(holders);
        const std::int64_t scanned = holders->revision;
        if (!holders->kvs.empty()) {  // signed or not: a task may hold it
            const KeyValue& kv = holders->kvs.front();
            auto h = decodeHolder(kv.value);
            return fail("secret " + quote(name) + " is assigned to task " +
                        quote(h ? h->task : kv.key.substr(holdersPrefix(name).size())) +
                        (h ? " on node " + quote(h->node) : std::string()) + ": unassign it first");
        }
        // Nothing was assigned when we looked. An assign between that read
        // and this delete writes a holder after `scanned`: the guard fails
        // and the read is redone (which then sees the new task).
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(k, modRevision), txnUnchangedSince(holdersPrefix(name), scanned)}},
                               {"success", {txnDelete(k), txnDelete(publishedKey(master->id))}},
                               {"failure", {txnRange(k)}}});
        if (!w) return propagate(w);
        if (w->succeeded || !found(*w)) return {};  // deleted, or gone: our own delete, retried
    }
    return fail("secret " + quote(name) + ": assignments kept changing while removing it (" +
                std::to_string(kAttempts) + " attempts); run the command again");
}

bool ClusterAdmin::fits(const std::vector<json>& ops) const {
    if (ops.size() > batchOps_) return false;
    std::size_t bytes = 0;
    for (const auto& op : ops) bytes += op.dump().size();
    return bytes <= batchBytes_;
}

// An assignment reads only what it changes: the task's placement, the
// node's tasks and copies, the node's registration and the masters it
// seals. The node's task record is the switch: the copies go first (in
// batches if etcd's limits need them), then the record with the placement
// in one transaction, then the copies no task on the node uses any more.
Result<void> ClusterAdmin::assignTask(const std::string& node, const TaskAssignment& assignment) {
    return assignOnNode(node, assignment, {}, {});
}

Result<void> ClusterAdmin::assignOnNode(const std::string& node, const TaskAssignment& assignment,
                                        const std::optional<std::string>& service, const json& guards) {
    const std::string& task = assignment.task;
    const std::string& specs = assignment.secrets;
    if (auto ok = checkName("task", task); !ok) return ok;
    if (assignment.maxContainers == 0 || assignment.maxContainers > kMaxContainersLimit)
        return fail("max containers must be 1 to " + std::to_string(kMaxContainersLimit));
    if (auto ok = checkName("node", node); !ok) return ok;
    auto refs = mountfs::parseSecretRefs(specs);
    if (!refs) return propagate(refs);
    if (auto layout = mountfs::planView(*refs); !layout) return propagate(layout);
    auto key = clusterKey();
    if (!key) return propagate(key);
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    const std::vector<std::string> sources = sourcesOf(*refs);
    if (auto ok = checkSourceCount(sources); !ok) return ok;
    const std::string indexKey = taskIndexKey(task);
    const std::string nodeTasksPrefix = nodePrefix(node) + "tasks/";
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        auto placed = client_->range(indexKey, false);
        if (!placed) return propagate(placed);
        std::int64_t placedRevision = 0;  // 0: not placed
        std::uint64_t placementSerial = 0;
        if (!placed->kvs.empty()) {
            auto p = decodePlacement(placed->kvs[0].value);
            if (p && p->node != node)
                return fail("task " + quote(task) + " is assigned to node " + quote(p->node) + ": unassign it first");
            if (p && !service && !p->service.empty())
                return fail("task " + quote(task) + " is a task of service " + quote(p->service) +
                            ": its grants are the service's (service update; task place to move it)");
            placedRevision = placed->kvs[0].modRevision;
            if (p) placementSerial = p->sig.serial;
        }
        std::int64_t scanned = 0;
        auto mine = nodeTasks(node, &scanned);
        if (!mine) return propagate(mine);
        std::uint64_t taskSerial = 0;  // of the record this one replaces
        std::vector<std::string> before;  // its sources in that record
        std::set<std::string> used(sources.begin(), sources.end());
        for (const auto& a : *mine) {
            if (a.task.task == task) {
                taskSerial = a.serial;
                before = a.sources;
            } else {
                used.insert(a.sources.begin(), a.sources.end());
            }
        }
        auto registered = nodePublicKey(node);
        if (!registered) return propagate(registered);
        const std::span<const unsigned char> pub(reinterpret_cast<const unsigned char*>(registered->data()),
                                                 registered->size());
        // What the node holds already: each copy's serial, and the names.
        auto held = client_->range(nodePrefix(node) + "secrets/", true);
        if (!held) return propagate(held);
        std::map<std::string, std::uint64_t> serials;
        std::set<std::string> heldNames;
        for (const auto& kv : held->kvs) {
            auto ref = parseNodeKey(kv.key);
            if (!ref || ref->node != node) continue;
            heldNames.insert(ref->name);
            if (auto s = decodeNodeSecret(kv.value)) serials[kv.key] = s->sig.serial;
        }

        // Guards: the placement as read (the task on no other node), the
        // node's tasks unchanged (the revocations rely on them), each
        // master unchanged (not rotated, not removed: a removed key's
        // mod_revision reads as 0).
        json compares = json::array({placedRevision == 0 ? txnAbsent(indexKey) : txnModRevision(indexKey, placedRevision),
                                     txnUnchangedSince(nodeTasksPrefix, scanned)});
        for (const auto& guard : guards) compares.push_back(guard);
        std::vector<json> copies;
        for (const auto& name : sources) {
            std::int64_t modRevision = 0;
            auto master = readMaster(*client_, name, &modRevision);
            if (!master) return propagate(master);
            compares.push_back(txnModRevision(masterKey(name), modRevision));
            // A secret placed for the first time is published at its
            // version (a rotation publishes every later one).
            auto pointer = client_->range(publishedKey(master->id), false);
            if (!pointer) return propagate(pointer);
            if (pointer->kvs.empty()) {
                Published published{master->id, master->version, {}};
                if (auto ok = (*signer)->sign(publishedKey(master->id), published, nextSerial(0)); !ok) return ok;
                compares.push_back(txnAbsent(publishedKey(master->id)));
                copies.push_back(txnPut(publishedKey(master->id), encodePublished(published)));
            }
            // Always re-sealed, even when a copy of this version is there: the
            // admin cannot tell a good copy from one moved in from another node
            // (which the node refuses), and a node ignores a new copy of a
            // version it already holds.
            auto plain = (*key)->open(master->sealed, {"", name, master->id, master->version});
            if (!plain) return fail("secret " + quote(name) + ": the cluster key cannot decrypt it");
            auto copy = sealForNode(pub, plain->span(), {node, name, master->id, master->version});
            if (!copy) return propagate(copy);
            NodeSecret fresh{name, master->id, master->version, *copy, {}};
            const std::string copyKey = nodeSecretKey(node, name, master->version);
            const auto prior = serials.find(copyKey);
            if (auto ok = (*signer)->sign(copyKey, fresh, nextSerial(prior == serials.end() ? 0 : prior->second)); !ok)
                return ok;
            copies.push_back(txnPut(copyKey, encodeNodeSecret(fresh)));
        }
        TaskAssignment record = assignment;
        if (auto ok = (*signer)->sign(taskKey(node, task), record, nextSerial(taskSerial)); !ok) return ok;
        TaskPlacement placement{node, assignment, service.value_or(""), {}};
        placement.task.sig = {};
        if (auto ok = (*signer)->sign(indexKey, placement, nextSerial(placementSerial)); !ok) return ok;
        std::vector<json> flip = {txnPut(taskKey(node, task), encodeTask(record)),
                                  txnPut(indexKey, encodePlacement(placement))};
        // The index by secret: this task holds each of its sources, on this node.
        for (const auto& name : sources) {
            Holder holder{name, task, node, {}};
            if (auto ok = (*signer)->sign(holderKey(name, task), holder, nextSerial(0)); !ok) return ok;
            flip.push_back(txnPut(holderKey(name, task), encodeHolder(holder)));
        }
        for (const auto& name : before)
            if (std::find(sources.begin(), sources.end(), name) == sources.end())
                flip.push_back(txnDelete(holderKey(name, task)));
        // Revocations: copies (every version) no task on this node uses.
        std::vector<json> revoked;
        for (const auto& name : heldNames)
            if (!used.count(name)) revoked.push_back(txnDelete(nodeSecretPrefix(node, name), true));

        std::vector<json> all = copies;
        all.insert(all.end(), flip.begin(), flip.end());
        all.insert(all.end(), revoked.begin(), revoked.end());
        if (fits(all)) {
            beforeCommit();
            auto w = client_->txn({{"compare", compares}, {"success", all}, {"failure", json::array()}});
            if (!w) return propagate(w);
            if (w->succeeded) return {};
            continue;  // lost a race (or our own write landed before a retry): redo it from a fresh read
        }
        auto written = writeBatches(compares, copies);
        if (!written) return propagate(written);
        if (!*written) continue;
        beforeCommit();
        auto w = client_->txn({{"compare", compares}, {"success", flip}, {"failure", json::array()}});
        if (!w) return propagate(w);
        if (!w->succeeded) continue;
        // Each batch also checks that no task was assigned to the node
        // since the switch (one that would use what is deleted here).
        auto deleted = writeBatches(json::array({txnUnchangedSince(nodeTasksPrefix, w->revision)}), revoked);
        if (!deleted) return propagate(deleted);
        return {};
    }
    return failWith(EAGAIN, "task " + quote(task) + ": its secrets or the node's assignments kept changing (" +
                                std::to_string(kAttempts) + " attempts); run the command again");
}

Result<std::string> ClusterAdmin::unassignTask(const std::string& task) {
    if (auto ok = checkName("task", task); !ok) return propagate(ok);
    const std::string indexKey = taskIndexKey(task);
    std::string node;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        auto placed = client_->range(indexKey, false);
        if (!placed) return propagate(placed);
        if (placed->kvs.empty()) {
            if (attempt > 0) return node;  // unassigned meanwhile (or our own delete, retried)
            return fail("task " + quote(task) + " is not assigned");
        }
        auto p = decodePlacement(placed->kvs[0].value);
        if (!p) return propagate(p, "task " + quote(task) + ": " + quote(indexKey));
        node = p->node;
        const std::string nodeTasksPrefix = nodePrefix(node) + "tasks/";
        std::int64_t scanned = 0;
        auto mine = nodeTasks(node, &scanned);
        if (!mine) return propagate(mine);
        std::set<std::string> used;
        std::vector<std::string> sources;
        for (const auto& a : *mine) {
            if (a.task.task == task)
                sources = a.sources;
            else
                used.insert(a.sources.begin(), a.sources.end());
        }
        for (const auto& name : sourcesOf(p->task.secrets))
            if (std::find(sources.begin(), sources.end(), name) == sources.end()) sources.push_back(name);
        std::vector<json> flip = {txnDelete(taskKey(node, task)), txnDelete(indexKey)};
        std::vector<json> revoked;
        for (const auto& name : sources) {
            flip.push_back(txnDelete(holderKey(name, task)));
            if (!used.count(name)) revoked.push_back(txnDelete(nodeSecretPrefix(node, name), true));
        }
        // A task assigned to this node meanwhile may need a copy deleted here.
        const json compares = {txnModRevision(indexKey, placed->kvs[0].modRevision),
                               txnUnchangedSince(nodeTasksPrefix, scanned)};
        std::vector<json> all = flip;
        all.insert(all.end(), revoked.begin(), revoked.end());
        if (fits(all)) {
            beforeCommit();
            auto w = client_->txn({{"compare", compares}, {"success", all}, {"failure", json::array()}});
            if (!w) return propagate(w);
            if (w->succeeded) return node;
            continue;
        }
        beforeCommit();
        auto w = client_->txn({{"compare", compares}, {"success", flip}, {"failure", json::array()}});
        if (!w) return propagate(w);
        if (!w->succeeded) continue;
        auto deleted = writeBatches(json::array({txnUnchangedSince(nodeTasksPrefix, w->revision)}), revoked);
        if (!deleted) return propagate(deleted);
        return node;
    }
    return fail("task " + quote(task) + ": the node's assignments kept changing (" + std::to_string(kAttempts) +
                " attempts); run the command again");
}

Result<ClusterAdmin::ServiceRead> ClusterAdmin::readService(const std::string& name) {
    if (auto ok = checkName("service", name); !ok) return propagate(ok);
    auto r = client_->range(serviceKey(name), false);
    if (!r) return propagate(r);
    if (r->kvs.empty()) return failWith(ENOENT, "service " + quote(name) + " not found");
    auto s = decodeService(r->kvs[0].value);
    if (!s) return propagate(s, "service " + quote(name));
    if (s->name != name) return fail("service " + quote(name) + ": the record names another service");
    if (auto ok = trusted_.verify(serviceKey(name), *s); !ok)
        return fail("service " + quote(name) + "'s record is not signed by a trusted admin key (" +
                    ok.error().message + "): check it, then service update it");
    return ServiceRead{std::move(*s), r->kvs[0].modRevision};
}

Result<void> ClusterAdmin::checkGrants(const TaskAssignment& grants) {
    if (grants.maxContainers == 0 || grants.maxContainers > kMaxContainersLimit)
        return fail("max containers must be 1 to " + std::to_string(kMaxContainersLimit));
    auto refs = mountfs::parseSecretRefs(grants.secrets);
    if (!refs) return propagate(refs);
    if (auto layout = mountfs::planView(*refs); !layout) return propagate(layout);
    if (auto ok = checkSourceCount(sourcesOf(*refs)); !ok) return ok;
    for (const auto& name : sourcesOf(*refs))
        if (auto m = readMaster(*client_, name); !m) return propagate(m);
    return {};
}

Result<void> ClusterAdmin::createService(const std::string& name, const TaskAssignment& grants) {
    if (auto ok = checkName("service", name); !ok) return ok;
    if (auto ok = checkGrants(grants); !ok) return ok;
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    Service fresh{name, grants, {}};
    fresh.grants.task.clear();
    fresh.grants.sig = {};
    if (auto ok = (*signer)->sign(serviceKey(name), fresh, nextSerial(0)); !ok) return ok;
    const std::string k = serviceKey(name);
    auto w = client_->txn({{"compare", {txnAbsent(k)}}, {"success", {txnPut(k, encodeService(fresh))}},
                           {"failure", {txnRange(k)}}});
    if (!w) return propagate(w);
    if (w->succeeded) return {};
    const KeyValue* existing = found(*w);
    auto prior = existing ? decodeService(existing->value) : fail("gone");
    if (prior && prior->sig == fresh.sig) return {};  // our own write, retried
    return fail("service " + quote(name) + " already exists (service update changes its grants)");
}

// The record first, then each task placed again with the new grants: each
// node switches when its task record does (a rolling update, as swarm's). A
// task placed meanwhile compares the record's mod_revision and is placed
// again with the new grants; an admin stopped midway leaves some tasks on
// the old grants, which the same update, run again, finishes.
Result<std::size_t> ClusterAdmin::updateService(const std::string& name, const TaskAssignment& grants) {
    if (auto ok = checkGrants(grants); !ok) return propagate(ok);
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    const std::string k = serviceKey(name);
    bool written = false;
    for (int attempt = 0; attempt < kAttempts && !written; ++attempt) {
        auto current = readService(name);
        if (!current && current.error().code == ENOENT) return propagate(current);
        std::int64_t modRevision = 0;
        std::uint64_t serial = 0;
        if (current) {
            modRevision = current->modRevision;
            serial = current->service.sig.serial;
        } else {  // not signed by a trusted key: replaced by ours
            auto r = client_->range(k, false);
            if (!r) return propagate(r);
            if (!r->kvs.empty()) modRevision = r->kvs[0].modRevision;
        }
        Service fresh{name, grants, {}};
        fresh.grants.task.clear();
        fresh.grants.sig = {};
        if (auto ok = (*signer)->sign(k, fresh, nextSerial(serial)); !ok) return propagate(ok);
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(k, modRevision)}},
                               {"success", {txnPut(k, encodeService(fresh))}},
                               {"failure", json::array()}});
        if (!w) return propagate(w);
        written = w->succeeded;
    }
    if (!written)
        return fail("service " + quote(name) + " kept changing (" + std::to_string(kAttempts) +
                    " attempts); run the command again");
    return placeAgain(name);
}

Result<std::size_t> ClusterAdmin::placeAgain(const std::string& name) {
    auto service = readService(name);
    if (!service) return propagate(service);
    auto all = assignments();
    if (!all) return propagate(all);
    std::size_t placed = 0;
    for (const auto& a : *all) {
        if (a.service != name) continue;
        TaskAssignment t = service->service.grants;
        t.task = a.task.task;
        if (auto ok = assignOnNode(a.node, t, name, json::array({txnModRevision(serviceKey(name), service->modRevision)}));
            !ok)
            return propagate(ok, "task " + quote(t.task));
        ++placed;
    }
    return placed;
}

Result<std::string> ClusterAdmin::placeTask(const std::string& task, const std::string& name, const std::string& node) {
    if (auto ok = checkName("task", task); !ok) return propagate(ok);
    if (auto ok = checkName("node", node); !ok) return propagate(ok);
    std::string from;  // the node it moved from
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        auto service = readService(name);
        if (!service) return propagate(service);
        auto placed = client_->range(taskIndexKey(task), false);
        if (!placed) return propagate(placed);
        if (!placed->kvs.empty()) {
            auto p = decodePlacement(placed->kvs[0].value);
            if (p && p->node != node) {
                // A move: its copies and record leave the old node (its
                // running containers there lose the task's secrets), then
                // it is placed on the new one. What would refuse the new
                // placement is checked first: a mistyped node must not
                // cost the task its old one.
                if (auto pub = nodePublicKey(node); !pub) return propagate(pub);
                if (auto ok = checkGrants(service->service.grants); !ok) return propagate(ok);
                auto left = unassignTask(task);
                if (!left) return propagate(left);
                from = *left;
            }
        }
        TaskAssignment t = service->service.grants;
        t.task = task;
        auto ok = assignOnNode(node, t, name, json::array({txnModRevision(serviceKey(name), service->modRevision)}));
        if (ok) return from;
        if (ok.error().code != EAGAIN) return propagate(ok);  // else: the service changed meanwhile
    }
    return fail("task " + quote(task) + ": service " + quote(name) + " kept changing (" +
                std::to_string(kAttempts) + " attempts); run the command again");
}

// Its tasks first (each revoked from its containers), then the record,
// guarded by "no task placed since": a task of it placed meanwhile is
// found and unassigned too.
Result<std::size_t> ClusterAdmin::removeService(const std::string& name) {
    if (auto ok = checkName("service", name); !ok) return propagate(ok);
    const std::string k = serviceKey(name);
    std::size_t removed = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        auto r = client_->range(k, false);
        if (!r) return propagate(r);
        if (r->kvs.empty()) {
            if (attempt > 0) return removed;
            return fail("service " + quote(name) + " not found");
        }
        std::int64_t scanned = 0;
        auto all = assignments(&scanned);
        if (!all) return propagate(all);
        bool any = false;
        for (const auto& a : *all) {
            if (a.service != name) continue;
            any = true;
            if (auto ok = unassignTask(a.task.task); !ok) return propagate(ok);
            ++removed;
        }
        if (any) continue;
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(k, r->kvs[0].modRevision), txnUnchangedSince(tasksPrefix(), scanned)}},
                               {"success", {txnDelete(k)}},
                               {"failure", json::array()}});
        if (!w) return propagate(w);
        if (w->succeeded) return removed;
    }
    return fail("service " + quote(name) + ": its tasks kept changing (" + std::to_string(kAttempts) +
                " attempts); run the command again");
}

Result<json> ClusterAdmin::listServices() {
    auto r = client_->range(servicesPrefix(), true);
    if (!r) return propagate(r);
    auto all = assignments();
    if (!all) return propagate(all);
    json out = json::array();
    for (const auto& kv : r->kvs) {
        auto s = decodeService(kv.value);
        if (!s) continue;
        json tasks = json::array();
        for (const auto& a : *all)
            if (a.service == s->name) tasks.push_back(a.task.task + "@" + a.node);
        json entry = {{"service", s->name}, {"secrets", s->grants.secrets}, {"identity", s->grants.identity.text()},
                      {"max_containers", s->grants.maxContainers}, {"tasks", tasks}};
        if (!trusted_.empty() && !trusted_.verify(kv.key, *s)) entry["trusted"] = false;
        out.push_back(std::move(entry));
    }
    return out;
}

Result<json> ClusterAdmin::listTasks() {
    auto all = assignments(nullptr, true);
    if (!all) return propagate(all);
    json out = json::array();
    for (const auto& a : *all) {
        json entry = {{"task", a.task.task}, {"node", a.node}, {"secrets", a.task.secrets},
                      {"identity", a.task.identity.text()}, {"max_containers", a.task.maxContainers}};
        if (!a.service.empty()) entry["service"] = a.service;
        // Not signed by a key this admin trusts (with none given, nothing is said).
        if (!a.trusted && !trusted_.empty()) entry["trusted"] = false;
        out.push_back(std::move(entry));
    }
    return out;
}

}  // namespace secretshim::cluster
