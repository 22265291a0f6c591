// secretshimctl: the admin CLI. Talks to the agent over its socket; a
// secret's value travels in a sealed memfd, never in a message or argv.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "mountfs/base/iso_time.hpp"
#include "mountfs/base/version.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/ctl/cluster_ctl.hpp"
#include "plugin/ctl/secret_filter.hpp"
#include "plugin/protocol/channel.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"
#include "plugin/store/secret_record.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;
using platform::UniqueFd;

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
constexpr std::size_t kMaxValue = 64 * 1024 * 1024;

// Copies the value into a sealed memfd: in memory only, and the agent can
// trust that it does not change while it reads.
Result<UniqueFd> valueMemfd(const std::string& source) {
    UniqueFd in(source == "-" ? ::dup(STDIN_FILENO) : ::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return failErrno("cannot read " + source);
    UniqueFd mem(::memfd_create("secretshim-value", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!mem) return failErrno("memfd_create");
    unsigned char buf[65536];
    std::size_t total = 0;
    Result<void> result;
    for (;;) {
        const ssize_t n = ::read(in.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { result = failErrno("reading " + source); break; }
        if (n == 0) break;
        total += static_cast<std::size_t>(n);
        if (total > kMaxValue) { result = fail("the value is too large"); break; }
        if (::write(mem.get(), buf, static_cast<std::size_t>(n)) != n) { result = failErrno("memfd write"); break; }
    }
    ::explicit_bzero(buf, sizeof buf);
    if (!result) return propagate(result);
    if (total == 0) return fail("the value is empty");
    if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        return failErrno("sealing the value");
    return mem;
}

Result<json> call(const std::string& socket, const json& request, std::span<const int> fds = {}) {
    auto sock = connectAgent(socket, kTimeout);
    if (!sock) return propagate(sock);
    if (auto ok = sendJson(sock->get(), request, fds); !ok) return propagate(ok);
    auto reply = receiveJson(sock->get());
    if (!reply) return propagate(reply);
    if (auto ok = checkOk(reply->body); !ok) return propagate(ok);
    return reply->body;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"secretshimctl: manage secretshim secrets on this node"};
    app.set_version_flag("--version", std::string("secretshimctl ") + versionString());
    app.require_subcommand(1);
    std::string socket(kDefaultSocket), format = "table", name, source = "-", rule;
    std::vector<std::string> grants, labels, filters;
    app.add_option("--socket", socket, "the agent's socket");

    auto* secret = app.add_subcommand("secret", "manage secrets");
    secret->require_subcommand(1);
    auto* create = secret->add_subcommand("create", "create a secret from FILE or - (stdin)");
    create->add_option("NAME", name)->required();
    create->add_option("FILE", source, "file holding the value, - for stdin");
    create->add_option("--grant", grants, "a grant rule (repeatable); without one the secret reaches nobody");
    create->add_option("--label", labels, "a label KEY=VALUE (repeatable), to find secrets by (secret ls --filter)");
    // Local: the store's value replaced, running containers updated at once;
    // with etcd settings: a new version in the cluster (cluster_ctl.cpp).
    auto* rotate = secret->add_subcommand(
        "rotate", "replace a secret's value from FILE or - (stdin); running containers holding it get the new one");
    rotate->add_option("NAME", name)->required();
    rotate->add_option("FILE", source, "file holding the value, - for stdin");
    auto* grant = secret->add_subcommand("grant", "let containers that RULE names receive the secret");
    grant->add_option("NAME", name)->required();
    grant->add_option("RULE", rule,
                      "kubernetes,namespace=NS[,pod=GLOB][,container=GLOB] | podman,name=GLOB | root; "
                      "optionally pinning ,target=PATH,uid=N,gid=N,mode=OCTAL")
        ->required();
    auto* revoke = secret->add_subcommand("revoke", "remove a grant (running containers lose the secret at once)");
    revoke->add_option("NAME", name)->required();
    revoke->add_option("RULE", rule, "the rule as granted")->required();
    auto* ls = secret->add_subcommand("ls", "list secrets");
    ls->add_option("--format", format)->check(CLI::IsMember({"table", "json"}));
    ls->add_option("--filter", filters, "label=KEY, label=KEY=VALUE, name=NAME or id=ID (repeatable: all must match)");
    auto* inspect = secret->add_subcommand("inspect", "show a secret's metadata (never its value)");
    inspect->add_option("NAME", name)->required();
    auto* rm = secret->add_subcommand("rm", "remove a secret no running task uses");
    rm->add_option("NAME", name)->required();
    auto* task = app.add_subcommand("task", "running tasks");
    task->require_subcommand(1);
    auto* tls = task->add_subcommand("ls", "list running tasks and the secrets they hold");
    tls->add_option("--format", format)->check(CLI::IsMember({"table", "json"}));
    auto* status = app.add_subcommand("status", "the agent's status");
    ClusterCli cluster(app, *secret, *task);  // the cluster commands (against etcd)

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    if (cluster.selected()) return cluster.run();

    Result<json> reply = fail("no command");
    if (create->parsed() || rotate->parsed()) {
        // The labels are checked here too, for a line before the value is read.
        SecretCreateRequest request{name, grants, std::nullopt, {}, rotate->parsed()};
        for (const auto& text : labels) {
            auto label = parseLabel(text);
            if (!label) {
                std::fprintf(stderr, "secretshimctl: --label: %s\n", label.error().message.c_str());
                return 1;
            }
            request.labels[label->first] = label->second;
        }
        auto mem = valueMemfd(source);
        if (!mem) {
            std::fprintf(stderr, "secretshimctl: secret \"%s\": %s\n", name.c_str(), mem.error().message.c_str());
            return 1;
        }
        const int fds[] = {mem->get()};
        reply = call(socket, request.toJson(), fds);
        if (reply && rotate->parsed())
            std::printf("%s version %llu: %llu running container(s) updated%s\n", name.c_str(),
                        static_cast<unsigned long long>(uintField(*reply, "version")),
                        static_cast<unsigned long long>(uintField(*reply, "updated")),
                        uintField(*reply, "failed")
                            ? (", " + std::to_string(uintField(*reply, "failed")) +
                               " not updated (see the agent's log)").c_str()
                            : "");
        else if (reply)
            std::printf("%s\n", stringField(*reply, "id").c_str());
    } else if (ls->parsed() || inspect->parsed()) {
        const SecretNameRequest request{ls->parsed() ? op::secretLs : op::secretInspect, name};
        auto filter = SecretFilter::parse(filters);
        auto list = filter ? replyAs<SecretListReply>(call(socket, request.toJson())) : propagate(filter);
        if (list && inspect->parsed() && list->secrets.empty()) list = fail("malformed reply from the agent");
        if (list && ls->parsed())
            std::erase_if(list->secrets, [&](const SecretInfo& s) { return !filter->matches(s); });
        if (list && (format == "json" || inspect->parsed())) {
            const json out = inspect->parsed() ? list->secrets[0].toJson() : list->toJson()["secrets"];
            std::printf("%s\n", out.dump(2).c_str());
        } else if (list) {
            std::printf("%-32s %-32s %7s %10s  %-20s %6s %s\n", "NAME", "ID", "VERSION", "SIZE", "UPDATED", "GRANTS",
                        "TASKS");
            for (const auto& s : list->secrets)
                std::printf("%-32s %-32s %7llu %10llu  %-20s %6zu %zu\n", s.name.c_str(), s.id.c_str(),
                            static_cast<unsigned long long>(s.version), static_cast<unsigned long long>(s.size),
                            isoTime(s.updated ? s.updated : s.created).c_str(), s.grants.size(), s.tasks.size());
        }
        reply = list ? Result<json>(list->toJson()) : propagate(list);
    } else if (grant->parsed() || revoke->parsed()) {
        reply = call(socket, SecretGrantRequest{revoke->parsed(), name, rule}.toJson());
    } else if (rm->parsed()) {
        reply = call(socket, SecretNameRequest{op::secretRm, name}.toJson());
    } else if (tls->parsed()) {
        // task.ls comes in pages (plugin/agent/task_list.hpp).
        auto list = collectTasks([&](const json& request) { return call(socket, request); });
        if (list && format == "json") {
            std::printf("%s\n", list->toJson()["tasks"].dump(2).c_str());
        } else if (list) {
            std::printf("%-64s %s\n", "CONTAINER", "SECRETS");
            for (const auto& t : list->tasks) {
                std::string names;
                for (const auto& s : t.secrets) names += (names.empty() ? "" : ",") + s;
                std::printf("%-64s %s\n", t.id.c_str(), names.c_str());
            }
        }
        reply = list ? Result<json>(list->toJson()) : propagate(list);
    } else if (status->parsed()) {
        reply = call(socket, {{"op", op::status}});
        if (reply) std::printf("%s\n", reply->dump(2).c_str());
    }
    if (!reply) {
        std::fprintf(stderr, "secretshimctl: %s\n", reply.error().message.c_str());
        return 1;
    }
    return 0;
}
