#include "plugin/ctl/cluster_ctl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "mountfs/base/iso_time.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/cluster/base64.hpp"
#include "plugin/cluster/cluster_admin.hpp"
#include "plugin/cluster/envelope.hpp"
#include "plugin/cluster/etcd_config.hpp"
#include "plugin/cluster/model.hpp"
#include "plugin/config/agent_config.hpp"
#include "plugin/protocol/json_fields.hpp"

namespace secretshim::plugin {

using namespace secretshim::cluster;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxValue = 16 * 1024 * 1024;

// Reads a secret's value from FILE or stdin straight into locked memory.
Result<SecureBuffer> readSecretValue(const std::string& source) {
    platform::UniqueFd in(source == "-" ? ::dup(STDIN_FILENO) : ::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return failErrno("cannot read " + source);
    auto buffer = SecureBuffer::allocate(kMaxValue);
    if (!buffer) return propagate(buffer);
    std::size_t total = 0;
    for (;;) {
        if (total == kMaxValue) return fail("the value is too large");
        const ssize_t n = ::read(in.get(), buffer->data() + total, kMaxValue - total);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("reading " + source);
        if (n == 0) break;
        total += static_cast<std::size_t>(n);
    }
    if (total == 0) return fail("the value is empty");
    auto exact = SecureBuffer::allocate(total);
    if (!exact) return propagate(exact);
    std::copy(buffer->data(), buffer->data() + total, exact->data());
    return exact;
}

std::string optionValue(CLI::App* app, const char* name, const std::string& fallback = {}) {
    auto* opt = app->get_option_no_throw(name);
    return opt && opt->count() > 0 ? opt->as<std::string>() : fallback;
}

int failed(const Error& e) {
    std::fprintf(stderr, "secretshimctl: %s\n", e.message.c_str());
    return 1;
}

// The node's public key: from --public-key, or from a key pair made (or
// found) at --key-out.
Result<PublicKey> nodePublicKey(const std::string& keyOut, const std::string& publicKey) {
    PublicKey pub{};
    if (!keyOut.empty()) {
        const auto slash = keyOut.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : keyOut.substr(0, slash ? slash : 1);
        auto pair = NodeKeyPair::loadOrCreate(dir, keyOut.substr(slash == std::string::npos ? 0 : slash + 1));
        if (!pair) return propagate(pair);
        return pair->publicKey();
    }
    auto raw = base64Decode(publicKey);
    if (!raw || raw->size() != pub.size())
        return fail("--public-key: expected 32 bytes in base64 (secretshimctl node keygen)");
    std::copy(raw->begin(), raw->end(), pub.begin());
    return pub;
}

}  // namespace

ClusterCli::ClusterCli(CLI::App& app, CLI::App& secret, CLI::App& task) : secret_(&secret) {
    auto* g = app.add_option_group("cluster", "etcd settings for the cluster commands");
    g->add_option("--cluster-config", config_, "YAML file with an etcd: block (the agent's format)");
    g->add_option("--endpoints", endpoints_, "etcd endpoints, https://HOST:PORT")->delimiter(',');
    g->add_option("--cacert", caFile_, "CA certificate of the etcd cluster");
    g->add_option("--cert", certFile_, "client certificate (its CN is the etcd user: root for an admin)");
    g->add_option("--key", keyFile_, "client key");
    g->add_option("--cluster-key", clusterKey_, "the admins' cluster key (created by the first secret create)");
    g->add_option("--signing-key", signingKey_,
                  "the admin's Ed25519 signing key, PEM (openssl genpkey -algorithm ed25519): signs what nodes read");

    nodeCmd_ = app.add_subcommand("node", "cluster nodes");
    nodeCmd_->require_subcommand(1);
    nodeAdd_ = nodeCmd_->add_subcommand("add", "register a node's public key; prints what the node admin installs");
    nodeAdd_->add_option("NODE", node_)->required();
    auto* keySource = nodeAdd_->add_option_group("key");
    keySource->add_option("--public-key", publicKey_, "the node's public key (base64, from `node keygen` on the node)");
    keySource->add_option("--key-out", keyOut_, "generate the node's key pair here, to be installed on the node");
    keySource->require_option(1);
    nodeAdd_->add_flag("--replace", replace_,
                       "the node is registered with another key (reinstalled): take this one, seal its copies again");
    nodeLs_ = nodeCmd_->add_subcommand("ls", "list registered nodes");
    nodeRm_ = nodeCmd_->add_subcommand("rm", "take a node out: revoke its etcd user, delete its tasks, copies and registration");
    nodeRm_->add_option("NODE", node_)->required();
    nodeKeygen_ = nodeCmd_->add_subcommand("keygen", "on a node: create (or show) its key pair, print the public key");
    nodeKeygen_->add_option("--state-dir", stateDir_, "the agent's state directory")->default_str("/var/lib/secretshim");
    stateDir_ = "/var/lib/secretshim";
    auto* keyStep = nodeKeygen_->add_option_group("rotation");
    keyStep->add_flag("--rotate", rotateKey_,
                      "make (or show) the node's next key pair; an admin registers its public half with "
                      "node add --replace");
    keyStep->add_flag("--promote", promoteKey_, "once registered: the next key pair becomes the node's key pair");
    keyStep->require_option(0, 1);

    rekey_ = secret.add_subcommand("rekey", "seal every cluster secret again to a new cluster key (made if missing)");
    rekey_->add_option("NEW_KEY", source_, "the new cluster key file")->required();
    rotate_ = secret.get_subcommand("rotate");  // main.cpp's: local, or here with etcd settings

    assign_ = task.add_subcommand("assign", "assign a task to a node with its secrets");
    assign_->add_option("TASK", name_)->required();
    assign_->add_option("--node", node_)->required();
    addGrantOptions(assign_);
    unassign_ = task.add_subcommand("unassign", "remove a task's assignment (revoked from its running containers)");
    unassign_->add_option("TASK", name_)->required();
    tasks_ = task.get_subcommand("ls");
    place_ = task.add_subcommand("place", "place a task of a service on a node (a placed task moves there)");
    place_->add_option("TASK", name_)->required();
    place_->add_option("--service", service_)->required();
    place_->add_option("--node", node_)->required();

    serviceCmd_ = app.add_subcommand("service", "cluster services: grants their tasks receive, wherever placed");
    serviceCmd_->require_subcommand(1);
    for (const char* verb : {"create", "update"}) {
        CLI::App* c = serviceCmd_->add_subcommand(verb, std::string(verb) == "create"
                                                            ? "create a service with its grants"
                                                            : "replace a service's grants; each of its tasks gets them");
        c->add_option("SERVICE", name_)->required();
        addGrantOptions(c);
        (std::string(verb) == "create" ? serviceCreate_ : serviceUpdate_) = c;
    }
    serviceRm_ = serviceCmd_->add_subcommand("rm", "remove a service and its tasks (revoked from their containers)");
    serviceRm_->add_option("SERVICE", name_)->required();
    serviceLs_ = serviceCmd_->add_subcommand("ls", "list services and their tasks");
    serviceLs_->add_option("--format", format_, "table or json")->check(CLI::IsMember({"table", "json"}));
}

// What a task (task assign) or a service's tasks (service create/update)
// are granted.
void ClusterCli::addGrantOptions(CLI::App* command) {
    command->add_option("--secret", specs_, "a Docker-style --secret spec (repeatable)")->required();
    command->add_option("--identity", identity_,
                        "the containers it belongs to: kubernetes,namespace=NS[,pod=GLOB][,container=GLOB], "
                        "podman,name=GLOB or root")
        ->required();
    command->add_option("--max-containers", maxContainers_, "how many containers may hold it at once (default 1)")
        ->check(CLI::Range(1u, cluster::kMaxContainersLimit));
    command->add_option("--signal", signal_, "signal for the container's init after its secrets changed")
        ->check(CLI::Range(0, 64));
}

Result<TaskAssignment> ClusterCli::grants() const {
    TaskAssignment t;
    for (const auto& spec : specs_) t.secrets += (t.secrets.empty() ? "" : ";") + spec;
    auto identity = parseBinding(identity_);
    if (!identity) return propagate(identity);
    t.identity = std::move(*identity);
    t.maxContainers = maxContainers_;
    t.signal = signal_;
    return t;
}

bool ClusterCli::selected() const {
    return !config_.empty() || !endpoints_.empty() || nodeCmd_->parsed() || rekey_->parsed() ||
           assign_->parsed() || unassign_->parsed() || place_->parsed() || serviceCmd_->parsed();
}

int ClusterCli::run() {
    if (nodeKeygen_->parsed()) return keygen();
    // Refused before anything is read or connected to.
    for (const char* command : {"create", "ls"}) {
        const char* option = std::string(command) == "create" ? "--label" : "--filter";
        auto* given = secret_->get_subcommand(command)->get_option_no_throw(option);
        if (given && given->count() > 0)
            return failed(Error{.message = std::string(option) +
                                           " is for a node's local store; cluster secrets carry no labels"});
    }
    auto settings = etcdConfig();
    if (!settings) return failed(settings.error());
    auto connected = connect(*settings);
    if (!connected) return failed(connected.error());
    ClusterAdmin& admin = **connected;

    CLI::App* create = secret_->get_subcommand("create");
    CLI::App* ls = secret_->get_subcommand("ls");
    CLI::App* inspect = secret_->get_subcommand("inspect");
    CLI::App* rm = secret_->get_subcommand("rm");
    if (nodeAdd_->parsed()) return addNode(admin, *settings);
    if (nodeLs_->parsed()) return listNodes(admin);
    if (nodeRm_->parsed()) {
        auto deleted = admin.removeNode(node_);
        if (!deleted) return failed(deleted.error());
        std::printf("node %s removed: its etcd user and role revoked, %lld key(s) deleted\n", node_.c_str(),
                    static_cast<long long>(*deleted));
        return 0;
    }
    if (create->parsed()) return createSecret(admin, create);
    if (rotate_->parsed()) return rotateSecret(admin);
    if (rekey_->parsed()) {
        auto next = ClusterKey::loadOrCreate(source_);
        if (!next) return failed(next.error());
        auto done = admin.rekey(*next);
        if (!done) return failed(done.error());
        std::printf("%zu secret(s) sealed again to %s (%zu already were): use it as the cluster key from now on, "
                    "and destroy the old one once every admin has it\n",
                    done->sealed, source_.c_str(), done->already);
        return 0;
    }
    if (ls->parsed() || inspect->parsed()) return listSecrets(admin, ls, inspect);
    if (rm->parsed()) {
        if (auto ok = admin.removeSecret(optionValue(rm, "NAME")); !ok) return failed(ok.error());
        return 0;
    }
    if (assign_->parsed()) return assignTask(admin);
    if (unassign_->parsed()) return unassignTask(admin);
    if (tasks_ && tasks_->parsed()) return listTasks(admin);
    if (serviceCmd_->parsed() || place_->parsed()) return services(admin);
    return failed(Error{.message = "this command is not available against the cluster"});
}

// The node's key pair; --rotate makes the next one beside it (the agent
// opens copies sealed to either), --promote puts the next one in its place.
int ClusterCli::keygen() {
    const std::string current(kNodeKeyPairFile), next(kNextNodeKeyPairFile);
    if (promoteKey_) {
        auto pair = NodeKeyPair::load(stateDir_, next);
        if (!pair && pair.error().code == ENOENT)
            return failed(fail(pair.error().message + " (make it first: secretshimctl node keygen --rotate)").value());
        if (!pair) return failed(pair.error());
        if (::rename((stateDir_ + "/" + next).c_str(), (stateDir_ + "/" + current).c_str()) != 0)
            return failed(failErrno("promoting " + stateDir_ + "/" + next).value());
        std::printf("%s\n", base64Encode(pair->publicKey()).c_str());
        return 0;
    }
    auto pair = NodeKeyPair::loadOrCreate(stateDir_, rotateKey_ ? next : current);
    if (!pair) return failed(pair.error());
    std::printf("%s\n", base64Encode(pair->publicKey()).c_str());
    return 0;
}

// The etcd block of --cluster-config, if given, with the options over it.
Result<EtcdConfig> ClusterCli::etcdConfig() const {
    EtcdConfig c;
    if (!config_.empty()) {
        auto loaded = loadAgentConfig(config_);
        if (!loaded) return propagate(loaded);
        if (!loaded->hasEtcd) return fail(config_ + ": no etcd block");
        c = loaded->etcd;
    }
    if (!endpoints_.empty()) c.endpoints = endpoints_;
    if (!caFile_.empty()) c.ca = caFile_;
    if (!certFile_.empty()) c.cert = certFile_;
    if (!keyFile_.empty()) c.key = keyFile_;
    if (!clusterKey_.empty()) c.clusterKey = clusterKey_;
    if (!signingKey_.empty()) c.signingKey = signingKey_;
    if (c.endpoints.empty())
        return fail("the cluster commands need etcd settings: --cluster-config FILE or --endpoints ...");
    return c;
}

// The etcd client and the keys this command needs: the cluster key to
// seal values, the signing key and the trusted admin keys to sign. A
// listing reads neither.
Result<std::unique_ptr<ClusterAdmin>> ClusterCli::connect(const EtcdConfig& c) const {
    auto client = etcdClientFor(c);
    if (!client) return propagate(client);

    CLI::App* create = secret_->get_subcommand("create");
    const bool needsKey = create->parsed() || rotate_->parsed() || rekey_->parsed() || assign_->parsed() ||
                          place_->parsed() || serviceUpdate_->parsed() || (nodeAdd_->parsed() && replace_);
    std::optional<ClusterKey> key;
    if (!c.clusterKey.empty() && needsKey) {
        auto k = create->parsed() ? ClusterKey::loadOrCreate(c.clusterKey) : ClusterKey::load(c.clusterKey);
        if (!k) return propagate(k);
        key.emplace(std::move(*k));
    }
    // Whatever a node will read is signed: registrations, task records and
    // copies (plugin/cluster/signing.hpp). The keys given are loaded for
    // every command: a listing marks what none of them signed.
    std::optional<AdminSigningKey> signer;
    if (!c.signingKey.empty()) {
        auto k = AdminSigningKey::load(c.signingKey);
        if (!k) return propagate(k);
        signer.emplace(std::move(*k));
    }
    auto trusted = TrustedKeys::load(c.adminKeys);
    if (!trusted) return propagate(trusted);
    return std::make_unique<ClusterAdmin>(std::move(*client), std::move(key), std::move(signer), std::move(*trusted));
}

int ClusterCli::addNode(ClusterAdmin& admin, const EtcdConfig& c) {
    auto pub = nodePublicKey(keyOut_, publicKey_);
    if (!pub) return failed(pub.error());
    if (auto ok = admin.addNode(node_, *pub, replace_); !ok) return failed(ok.error());
    std::printf("node %s registered (public key %s)\n", node_.c_str(), base64Encode(*pub).c_str());
    std::printf("\nOn the node, install:\n");
    if (!keyOut_.empty())
        std::printf("  %s as <state_dir>/%s (mode 0600, root), then delete it here\n", keyOut_.c_str(),
                    std::string(kNodeKeyPairFile).c_str());
    std::printf("  a client certificate of the cluster's CA with CN=%s (etcd user %s, made now, may read %s\n"
                "  and nothing else), and in secretshimd.yaml:\n\n",
                node_.c_str(), node_.c_str(), nodePrefix(node_).c_str());
    std::printf("source: etcd\netcd:\n  endpoints: [");
    for (std::size_t i = 0; i < c.endpoints.size(); ++i) std::printf("%s%s", i ? ", " : "", c.endpoints[i].c_str());
    std::printf("]\n  ca: %s\n  cert: /etc/secretshim/etcd/%s.crt   # CN=%s\n"
                "  key: /etc/secretshim/etcd/%s.key\n"
                "  node: %s\n  admin_keys: [/etc/secretshim/admin-signing.pub]   # the public half of %s\n",
                c.ca.c_str(), node_.c_str(), node_.c_str(), node_.c_str(), node_.c_str(), c.signingKey.c_str());
    return 0;
}

int ClusterCli::listNodes(ClusterAdmin& admin) {
    auto nodes = admin.listNodes();
    if (!nodes) return failed(nodes.error());
    for (const auto& n : *nodes)
        std::printf("%-32s %s\n", stringField(n, "node").c_str(), stringField(n, "public_key").c_str());
    return 0;
}

int ClusterCli::createSecret(ClusterAdmin& admin, CLI::App* create) {
    const std::string name = optionValue(create, "NAME");
    if (auto* g = create->get_option_no_throw("--grant"); g && g->count() > 0)
        return failed(Error{.message = "--grant is for a node's local store; in the cluster a task is bound to its "
                               "containers: task assign --identity RULE"});

    if (auto ok = checkName("secret", name); !ok) return failed(ok.error());
    auto value = readSecretValue(optionValue(create, "FILE", "-"));
    if (!value) return failed(wrap(value.error(), "secret " + quote(name)));
    auto id = admin.createSecret(name, *value);
    if (!id) return failed(id.error());
    std::printf("%s\n", id->c_str());
    return 0;
}

int ClusterCli::rotateSecret(ClusterAdmin& admin) {
    const std::string name = optionValue(rotate_, "NAME");
    if (auto ok = checkName("secret", name); !ok) return failed(ok.error());
    auto value = readSecretValue(optionValue(rotate_, "FILE", "-"));
    if (!value) return failed(wrap(value.error(), "secret " + quote(name)));
    auto version = admin.rotateSecret(name, *value);
    if (!version) return failed(version.error());
    std::printf("%s version %llu\n", name.c_str(), static_cast<unsigned long long>(*version));
    return 0;
}

int ClusterCli::listSecrets(ClusterAdmin& admin, CLI::App* ls, CLI::App* inspect) {
    auto list = admin.listSecrets(inspect->parsed() ? optionValue(inspect, "NAME") : "");
    if (!list) return failed(list.error());
    if (inspect->parsed() || optionValue(ls, "--format", "table") == "json") {
        std::printf("%s\n", (inspect->parsed() ? (*list)[0] : *list).dump(2).c_str());
        return 0;
    }
    std::printf("%-32s %-32s %7s %10s  %-20s %s\n", "NAME", "ID", "VERSION", "SIZE", "UPDATED", "TASKS");
    // A rotation under way, or one that stopped before its switch: the
    // next `secret rotate` takes it over.
    for (const auto& s : *list) {
        const std::uint64_t staging = uintField(s, "staging");
        std::printf("%-32s %-32s %7llu %10llu  %-20s %zu%s\n", stringField(s, "name").c_str(),
                    stringField(s, "id").c_str(), static_cast<unsigned long long>(uintField(s, "version")),
                    static_cast<unsigned long long>(uintField(s, "size")), isoTime(intField(s, "updated")).c_str(),
                    anyField(s, "tasks").size(),
                    staging ? ("  (rotating to version " + std::to_string(staging) + ")").c_str() : "");
    }
    return 0;
}

int ClusterCli::assignTask(ClusterAdmin& admin) {
    auto t = grants();
    if (!t) return failed(t.error());
    t->task = name_;
    if (auto ok = admin.assignTask(node_, *t); !ok) return failed(ok.error());
    std::printf("task %s assigned to node %s for %s\n", name_.c_str(), node_.c_str(), t->identity.text().c_str());
    return 0;
}

int ClusterCli::services(ClusterAdmin& admin) {
    if (place_->parsed()) {
        auto from = admin.placeTask(name_, service_, node_);
        if (!from) return failed(from.error());
        std::printf("task %s of service %s placed on node %s%s\n", name_.c_str(), service_.c_str(), node_.c_str(),
                    from->empty() ? "" : (" (moved from node " + *from + ")").c_str());
        return 0;
    }
    if (serviceRm_->parsed()) {
        auto removed = admin.removeService(name_);
        if (!removed) return failed(removed.error());
        std::printf("service %s removed with its %zu task(s)\n", name_.c_str(), *removed);
        return 0;
    }
    if (serviceLs_->parsed()) {
        auto list = admin.listServices();
        if (!list) return failed(list.error());
        if (format_ == "json") {
            std::printf("%s\n", list->dump(2).c_str());
            return 0;
        }
        std::printf("%-32s %-40s %-8s %s\n", "SERVICE", "IDENTITY", "TASKS", "SECRETS");
        for (const auto& s : *list)
            std::printf("%-32s %-40s %-8zu %s%s\n", stringField(s, "service").c_str(),
                        stringField(s, "identity").c_str(), anyField(s, "tasks").size(),
                        stringField(s, "secrets").c_str(),
                        s.contains("trusted") ? "  (not signed by a trusted admin key)" : "");
        return 0;
    }
    auto given = grants();
    if (!given) return failed(given.error());
    if (serviceCreate_->parsed()) {
        if (auto ok = admin.createService(name_, *given); !ok) return failed(ok.error());
        std::printf("service %s created for %s\n", name_.c_str(), given->identity.text().c_str());
        return 0;
    }
    auto updated = admin.updateService(name_, *given);
    if (!updated) return failed(updated.error());
    std::printf("service %s updated: %zu task(s) placed again with its grants\n", name_.c_str(), *updated);
    return 0;
}

int ClusterCli::unassignTask(ClusterAdmin& admin) {
    auto node = admin.unassignTask(name_);
    if (!node) return failed(node.error());
    std::printf("task %s unassigned from node %s\n", name_.c_str(), node->c_str());
    return 0;
}

int ClusterCli::listTasks(ClusterAdmin& admin) {
    auto list = admin.listTasks();
    if (!list) return failed(list.error());
    if (optionValue(tasks_, "--format", "table") == "json") {
        std::printf("%s\n", list->dump(2).c_str());
        return 0;
    }
    std::printf("%-32s %-24s %-24s %-40s %s\n", "TASK", "NODE", "SERVICE", "IDENTITY", "SECRETS");
    for (const auto& t : *list)
        std::printf("%-32s %-24s %-24s %-40s %s%s\n", stringField(t, "task").c_str(), stringField(t, "node").c_str(),
                    t.contains("service") ? stringField(t, "service").c_str() : "-",
                    stringField(t, "identity").c_str(), stringField(t, "secrets").c_str(),
                    t.contains("trusted") ? "  (placement not signed by a trusted admin key)" : "");
    return 0;
}

}  // namespace secretshim::plugin
