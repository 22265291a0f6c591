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

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// A guarded write that lost a race is redone from a fresh read this often
// before the command gives up with one line.
constexpr int kAttempts = 5;

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
        if (auto ok = assignTask(node, *task); !ok) return ok;
    }
    return {};
}

Result<void> ClusterAdmin::registerNode(const std::string& node, const PublicKey& publicKey, bool replace) {
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    if (auto ok = client_->ensureReader(node, nodePrefix(node)); !ok) return ok;
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
    auto prefix = client_->remove(nodePrefix(node), true);
    if (!prefix) return propagate(prefix);
    auto registration = client_->remove(registrationKey(node));
    if (!registration) return propagate(registration);
    return prefix->deleted + registration->deleted;
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

Result<std::vector<ClusterAdmin::Assignment>> ClusterAdmin::assignments(std::int64_t* revision) {
    auto r = client_->range(nodesPrefix(), true);
    if (!r) return propagate(r);
    if (revision) *revision = r->revision;
    std::vector<Assignment> out;
    for (const auto& kv : r->kvs) {
        auto ref = parseNodeKey(kv.key);
        if (!ref || ref->kind != NodeKeyRef::Kind::task) continue;
        auto task = decodeTask(kv.value);
        if (!task) continue;
        auto refs = mountfs::parseSecretRefs(task->secrets);
        out.push_back({ref->node, ref->name, task->secrets, refs ? sourcesOf(*refs) : std::vector<std::string>{},
                       task->identity.text(), task->maxContainers, task->sig.serial});
    }
    return out;
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

Result<std::uint64_t> ClusterAdmin::rotateSecret(const std::string& name, const SecureBuffer& value) {
    if (auto ok = checkName("secret", name); !ok) return propagate(ok);
    auto key = clusterKey();
    if (!key) return propagate(key);
    auto signer = signingKey();
    if (!signer) return propagate(signer);
    const std::string k = masterKey(name);
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        std::int64_t modRevision = 0;
        auto master = readMaster(*client_, name, &modRevision);
        if (!master) return propagate(master);
        std::int64_t scanned = 0;
        auto all = assignments(&scanned);
        if (!all) return propagate(all);
        MasterSecret next = *master;
        next.version = master->version + 1;
        next.updated = now();
        next.size = value.size();
        auto sealed = (*key)->seal(value.span(), {"", name, next.id, next.version});
        if (!sealed) return propagate(sealed);
        next.sealed = std::move(*sealed);
        json ops = json::array({txnPut(k, encodeMaster(next))});
        std::set<std::string> nodes;
        for (const auto& a : *all)
            if (std::find(a.sources.begin(), a.sources.end(), name) != a.sources.end()) nodes.insert(a.node);
        for (const auto& node : nodes) {
            auto pub = nodePublicKey(node);
            if (!pub) return propagate(pub);
            auto copy = sealForNode({reinterpret_cast<const unsigned char*>(pub->data()), pub->size()}, value.span(),
                                    {node, name, next.id, next.version});
            if (!copy) return propagate(copy);
            // Signed with a serial above the copy it replaces.
            const std::string copyKey = nodeSecretKey(node, name);
            auto prior = client_->range(copyKey, false);
            if (!prior) return propagate(prior);
            auto old = prior->kvs.empty() ? fail("none") : decodeNodeSecret(prior->kvs[0].value);
            NodeSecret fresh{name, next.id, next.version, *copy, {}};
            if (auto ok = (*signer)->sign(copyKey, fresh, nextSerial(old ? old->sig.serial : 0)); !ok)
                return propagate(ok);
            ops.push_back(txnPut(copyKey, encodeNodeSecret(fresh)));
        }
        // The master unchanged, and no task written since the scan: a task
        // assigned meanwhile would keep the old version's copy.
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(k, modRevision), txnUnchangedSince(nodesPrefix(), scanned)}},
                               {"success", ops},
                               {"failure", {txnRange(k)}}});
        if (!w) return propagate(w);
        if (w->succeeded) return next.version;
        const KeyValue* existing = found(*w);
        auto current = existing ? decodeMaster(existing->value) : fail("gone");
        if (current && current->sealed.ciphertext == next.sealed.ciphertext && current->sealed.nonce == next.sealed.nonce)
            return next.version;  // our own write, retried
    }
    return fail("secret " + quote(name) + " kept changing while rotating it (" + std::to_string(kAttempts) +
                " attempts); run the command again");
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
                tasks.push_back(a.node + "/" + a.task);
        out.push_back({{"name", m->name}, {"id", m->id}, {"version", m->version}, {"size", m->size},
                       {"created", m->created}, {"updated", m->updated}, {"tasks", tasks}});
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
        std::int64_t scanned = 0;
        auto all = assignments(&scanned);
        if (!all) return propagate(all);
        for (const auto& a : *all)
            if (std::find(a.sources.begin(), a.sources.end(), name) != a.sources.end())
                return fail("secret " + quote(name) + " is assigned to task " + quote(a.task) + " on node " +
                            quote(a.node) + ": unassign it first");
        // Nothing was assigned when we looked. An assign between that scan
        // and this delete writes under nodes/ after `scanned`: the guard
        // fails and the scan is redone (which then sees the new task).
        beforeCommit();
        auto w = client_->txn({{"compare", {txnModRevision(k, modRevision), txnUnchangedSince(nodesPrefix(), scanned)}},
                               {"success", {txnDelete(k)}},
                               {"failure", {txnRange(k)}}});
        if (!w) return propagate(w);
        if (w->succeeded || !found(*w)) return {};  // deleted, or gone: our own delete, retried
    }
    return fail("secret " + quote(name) + ": assignments kept changing while removing it (" +
                std::to_string(kAttempts) + " attempts); run the command again");
}

Result<void> ClusterAdmin::assignTask(const std::string& node, const TaskAssignment& assignment) {
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
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        std::int64_t scanned = 0;
        auto all = assignments(&scanned);
        if (!all) return propagate(all);
        std::uint64_t taskSerial = 0;  // of the record this one replaces
        for (const auto& a : *all) {
            if (a.task == task && a.node != node)
                return fail("task " + quote(task) + " is assigned to node " + quote(a.node) + ": unassign it first");
            if (a.task == task) taskSerial = a.serial;
        }
        auto registered = nodePublicKey(node);
        if (!registered) return propagate(registered);
        const std::span<const unsigned char> pub(reinterpret_cast<const unsigned char*>(registered->data()),
                                                 registered->size());

        // What the node holds already (each copy's serial), for the
        // revocations and the serials below.
        auto held = client_->range(nodePrefix(node) + "secrets/", true);
        if (!held) return propagate(held);
        std::map<std::string, std::uint64_t> copies;
        for (const auto& kv : held->kvs)
            if (auto s = decodeNodeSecret(kv.value)) copies[s->name] = s->sig.serial;
        TaskAssignment record = assignment;
        if (auto ok = (*signer)->sign(taskKey(node, task), record, nextSerial(taskSerial)); !ok) return ok;

        // Guards: each master unchanged since read (not rotated, not
        // removed: a removed key's mod_revision reads as 0), and nothing
        // written under nodes/ since the scan (the same task on another
        // node, or another task's grants that the revocations rely on).
        json compares = json::array({txnUnchangedSince(nodesPrefix(), scanned)});
        json ops = json::array({txnPut(taskKey(node, task), encodeTask(record))});
        for (const auto& name : sources) {
            std::int64_t modRevision = 0;
            auto master = readMaster(*client_, name, &modRevision);
            if (!master) return propagate(master);
            compares.push_back(txnModRevision(masterKey(name), modRevision));
            // Always re-sealed, even when a copy of this version is there: the
            // admin cannot tell a good copy from one moved in from another node
            // (which the node refuses), and a node ignores a new copy of a
            // version it already holds.
            auto plain = (*key)->open(master->sealed, {"", name, master->id, master->version});
            if (!plain) return fail("secret " + quote(name) + ": the cluster key cannot decrypt it");
            auto copy = sealForNode(pub, plain->span(), {node, name, master->id, master->version});
            if (!copy) return propagate(copy);
            NodeSecret fresh{name, master->id, master->version, *copy, {}};
            const auto prior = copies.find(name);
            if (auto ok = (*signer)->sign(nodeSecretKey(node, name), fresh,
                                          nextSerial(prior == copies.end() ? 0 : prior->second));
                !ok)
                return ok;
            ops.push_back(txnPut(nodeSecretKey(node, name), encodeNodeSecret(fresh)));
        }
        // Revocations: copies no task on this node uses any more.
        std::set<std::string> used(sources.begin(), sources.end());
        for (const auto& a : *all)
            if (a.node == node && a.task != task) used.insert(a.sources.begin(), a.sources.end());
        for (const auto& [name, serial] : copies)
            if (!used.count(name)) ops.push_back(txnDelete(nodeSecretKey(node, name)));
        beforeCommit();
        auto w = client_->txn({{"compare", compares}, {"success", ops}, {"failure", json::array()}});
        if (!w) return propagate(w);
        if (w->succeeded) return {};
        // Lost a race (or our own write landed before a retry): redo it from
        // a fresh read; writing the same assignment again is harmless.
    }
    return fail("task " + quote(task) + ": its secrets or the node's assignments kept changing (" +
                std::to_string(kAttempts) + " attempts); run the command again");
}

Result<std::string> ClusterAdmin::unassignTask(const std::string& task) {
    if (auto ok = checkName("task", task); !ok) return propagate(ok);
    std::string node;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        std::int64_t scanned = 0;
        auto all = assignments(&scanned);
        if (!all) return propagate(all);
        const auto it = std::find_if(all->begin(), all->end(), [&](const Assignment& a) { return a.task == task; });
        if (it == all->end()) {
            if (attempt > 0) return node;  // unassigned meanwhile (or our own delete, retried)
            return fail("task " + quote(task) + " is not assigned");
        }
        node = it->node;
        std::set<std::string> used;
        for (const auto& a : *all)
            if (a.node == node && a.task != task) used.insert(a.sources.begin(), a.sources.end());
        json ops = json::array({txnDelete(taskKey(node, task))});
        for (const auto& name : it->sources)
            if (!used.count(name)) ops.push_back(txnDelete(nodeSecretKey(node, name)));
        // A task assigned to this node meanwhile may need a copy deleted here.
        beforeCommit();
        auto w = client_->txn(
            {{"compare", {txnUnchangedSince(nodePrefix(node), scanned)}}, {"success", ops}, {"failure", json::array()}});
        if (!w) return propagate(w);
        if (w->succeeded) return node;
    }
    return fail("task " + quote(task) + ": the node's assignments kept changing (" + std::to_string(kAttempts) +
                " attempts); run the command again");
}

Result<json> ClusterAdmin::listTasks() {
    auto all = assignments();
    if (!all) return propagate(all);
    json out = json::array();
    for (const auto& a : *all)
        out.push_back({{"task", a.task}, {"node", a.node}, {"secrets", a.secrets}, {"identity", a.identity},
                       {"max_containers", a.maxContainers}});
    return out;
}

}  // namespace secretshim::cluster
