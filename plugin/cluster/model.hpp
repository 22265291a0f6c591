// The cluster data model in etcd: key names under /secretshim/ and the JSON
// records stored at them (docs/cluster.md). Parsing never throws: a bad
// record is an Error naming what is wrong, so callers log it by key and
// skip it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"
#include "plugin/identity/grant_rule.hpp"

namespace secretshim::cluster {

inline constexpr std::string_view kRoot = "/secretshim/";
inline constexpr std::size_t kMaxNameLength = 128;

// Node and task names become key segments: [A-Za-z0-9][A-Za-z0-9._-]*, at
// most 128 bytes, no "..". A secret's name ("secret") is held to the one
// grammar of secret names everywhere, mountfs::checkSecretName. `kind` names
// the thing in the error ("node").
Result<void> checkName(std::string_view kind, std::string_view name);

// What a node may read (its etcd role covers exactly these prefixes): its
// own, and the published versions.
std::string nodePrefix(std::string_view node);             // /secretshim/nodes/<node>/
std::string taskKey(std::string_view node, std::string_view task);        // .../tasks/<task>
std::string nodeSecretPrefix(std::string_view node, std::string_view name);  // .../secrets/<name>/
std::string nodeSecretKey(std::string_view node, std::string_view name, std::uint64_t version);  // .../<version>
std::string publishedPrefix();                            // /secretshim/published/
std::string publishedKey(std::string_view id);            // /secretshim/published/<secret id>
// Admin only.
std::string nodesPrefix();                                // /secretshim/nodes/
std::string tasksPrefix();                                // /secretshim/tasks/
std::string taskIndexKey(std::string_view task);          // /secretshim/tasks/<task>
std::string holdersPrefix(std::string_view secret);       // /secretshim/holders/<secret>/
std::string holderKey(std::string_view secret, std::string_view task);  // .../<task>
std::string servicesPrefix();                             // /secretshim/services/
std::string serviceKey(std::string_view service);         // /secretshim/services/<service>
std::string masterKey(std::string_view name);             // /secretshim/secrets/<name>
std::string mastersPrefix();                              // /secretshim/secrets/
std::string registrationKey(std::string_view node);       // /secretshim/registry/<node>
std::string registrationsPrefix();                        // /secretshim/registry/

// A copy's key names its version in 20 digits, so that the keys of a
// secret's versions sort as the versions do: one range delete takes every
// version below one.
inline constexpr std::size_t kVersionDigits = 20;

// What a key under some node's prefix is.
struct NodeKeyRef {
    enum class Kind { task, secret } kind = Kind::task;
    std::string node;
    std::string name;           // the task id or the secret name
    std::uint64_t version = 0;  // a copy's version (secret keys)
};
Result<NodeKeyRef> parseNodeKey(std::string_view key);

// An admin's signature of a record (plugin/cluster/signing.hpp), and the
// record's serial: it only grows from one record at a key to the next, and
// a node refuses a record whose serial is below the highest it has seen at
// that key (persisted: docs/cluster.md, "Signed records").
struct Signed {
    std::uint64_t serial = 0;
    std::string signer;     // keyId() of the admin key; empty: not signed
    std::string signature;  // 64 raw bytes (Ed25519)
    bool operator==(const Signed&) const = default;
};

// nodes/<node>/tasks/<task>: the task's grants as Docker --secret specs
// joined by ';' (the syntax of io.secretshim.secrets); the identity of the
// containers it belongs to (a grant rule without pins) and how many of them
// may hold it at once; an optional signal for the container's init after
// its secrets changed (0: none).
struct TaskAssignment {
    std::string task;
    std::string secrets;
    plugin::GrantRule identity;
    std::uint32_t maxContainers = 1;
    int signal = 0;
    Signed sig;
};
inline constexpr std::uint32_t kMaxContainersLimit = 100000;
// A task binding's rule: parsed, and refused if it pins a target, owner or
// mode (the assignment's specs say those).
Result<plugin::GrantRule> parseBinding(std::string_view text);

// An AES-256-GCM sealed value, with (for per-node copies) the sender's
// ephemeral X25519 public key.
struct SealedValue {
    std::string epk;  // raw bytes; empty for master copies
    std::string nonce;
    std::string ciphertext;
    std::string tag;
};

// nodes/<node>/secrets/<name>: the copy of one version of a secret,
// encrypted to that node.
struct NodeSecret {
    std::string name;
    std::string id;          // the secret's id, fixed at creation
    std::uint64_t version = 0;  // 1 at creation, +1 per rotation
    SealedValue sealed;
    Signed sig;
};

// published/<id>: the version of a secret that nodes use. A rotation writes
// every node's copy of the new version first (in as many transactions as
// etcd's limits need), then moves this pointer, with the master, in one
// transaction: every node switches at that revision, and an admin who
// stops before leaves every node on the old version. Keyed by the secret's
// id, not its name: every node may read every pointer.
struct Published {
    std::string id;
    std::uint64_t version = 0;
    Signed sig;
};

// tasks/<task>: where a task is placed, and its assignment (the admin's
// index: a command reads the tasks, not every node's copies). Signed like
// the node's record, so that a planted entry cannot make an admin seal a
// secret to a node of someone's choosing.
struct TaskPlacement {
    std::string node;
    TaskAssignment task;  // its own sig unused: the placement is signed
    std::string service;  // the service it is a task of; empty: a task of its own
    Signed sig;
};

// holders/<secret>/<task>: the secret is one of the task's sources, and the
// task is on `node` (the admins' index by secret: a rotation or an rm reads
// the holders of one secret, not every task). Signed: a rotation seals a
// copy to the node named here.
struct Holder {
    std::string secret;
    std::string task;
    std::string node;
    Signed sig;
};

// services/<service>: a service's grants (as Docker swarm grants secrets to
// a service): its specs, the identity its tasks' containers must be, how
// many containers each task may have, its signal. Its tasks are placed on
// nodes (tasks/<task> names the service), and each node gets a task record
// with these grants. Signed: admins seal copies from it.
struct Service {
    std::string name;
    TaskAssignment grants;  // `task` unused
    Signed sig;
};

// secrets/<name>: the admin's master copy under the cluster key.
struct MasterSecret {
    std::string name;
    std::string id;
    std::uint64_t version = 0;
    std::int64_t created = 0;  // unix seconds of version 1
    std::int64_t updated = 0;  // unix seconds of this version
    std::uint64_t size = 0;
    SealedValue sealed;
    // A rotation to this version is writing the nodes' copies (0: none).
    // Writing it changes the master's mod_revision, which every write of
    // that rotation compares: the last admin to start one is the only one
    // whose copies land; a rotation that stopped is taken over by the next.
    std::uint64_t staging = 0;
    // The serial every copy of the rotation last claimed is signed with:
    // the next claim signs above it, so a node that received copies from a
    // rotation that stopped takes the ones that replace them, whatever the
    // two admins' clocks say.
    std::uint64_t stagingSerial = 0;
};

// registry/<node>: a node's X25519 public key (raw 32 bytes).
struct NodeRegistration {
    std::string node;
    std::string publicKey;
    Signed sig;
};

// What an admin signs of a record at etcd key `key`: a fixed label, the
// key, and every field but the signature, each length-prefixed.
std::string signedMessage(std::string_view key, const TaskAssignment& task);
std::string signedMessage(std::string_view key, const NodeSecret& secret);
std::string signedMessage(std::string_view key, const NodeRegistration& reg);
std::string signedMessage(std::string_view key, const Published& published);
std::string signedMessage(std::string_view key, const TaskPlacement& placement);
std::string signedMessage(std::string_view key, const Service& service);
std::string signedMessage(std::string_view key, const Holder& holder);

std::string encodeTask(const TaskAssignment& task);
Result<TaskAssignment> decodeTask(std::string_view json);
std::string encodeNodeSecret(const NodeSecret& secret);
Result<NodeSecret> decodeNodeSecret(std::string_view json);
std::string encodeMaster(const MasterSecret& secret);
Result<MasterSecret> decodeMaster(std::string_view json);
std::string encodeRegistration(const NodeRegistration& reg);
Result<NodeRegistration> decodeRegistration(std::string_view json);
std::string encodePublished(const Published& published);
Result<Published> decodePublished(std::string_view json);
std::string encodePlacement(const TaskPlacement& placement);
Result<TaskPlacement> decodePlacement(std::string_view json);
std::string encodeHolder(const Holder& holder);
Result<Holder> decodeHolder(std::string_view json);
std::string encodeService(const Service& service);
Result<Service> decodeService(std::string_view json);

}  // namespace secretshim::cluster
