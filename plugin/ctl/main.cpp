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
#include "platform/linux/unique_fd.hpp"
#include "plugin/ctl/cluster_ctl.hpp"
#include "plugin/protocol/channel.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"

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
    if (!result) return tl::unexpected(result.error());
    if (total == 0) return fail("the value is empty");
    if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        return failErrno("sealing the value");
    return mem;
}

Result<json> call(const std::string& socket, const json& request, std::span<const int> fds = {}) {
    auto sock = connectAgent(socket, kTimeout);
    if (!sock) return tl::unexpected(sock.error());
    if (auto ok = sendJson(sock->get(), request, fds); !ok) return tl::unexpected(ok.error());
    auto reply = receiveJson(sock->get());
    if (!reply) return tl::unexpected(reply.error());
    if (!boolField(reply->body, "ok")) {
        const std::string* error = stringAt(reply->body, "error");
        return fail(error ? *error : "refused");
    }
    return reply->body;
}

// task.ls comes in pages (plugin/agent/task_list.hpp): ask for the next
// one after the last task (its id and bundle: ids repeat across containerd
// namespaces) until "more" is false. One reply holds all. An agent older
// than bundles lists none: they read as "".
Result<json> callTaskList(const std::string& socket) {
    json all = json::array();
    std::optional<std::pair<std::string, std::string>> after;
    for (;;) {
        json request = {{"op", "task.ls"}};
        if (after) request.update({{"after", after->first}, {"after_bundle", after->second}});
        auto page = call(socket, request);
        if (!page) return page;
        const auto tasks = page->find("tasks");
        if (tasks == page->end() || !tasks->is_array()) return fail("malformed reply from the agent");
        for (auto& t : *tasks) all.push_back(std::move(t));
        if (!boolField(*page, "more") || tasks->empty()) break;
        const json& last = all.back();
        if (!stringAt(last, "id"))
            return fail("malformed reply from the agent");
        // Each page starts past the last: a reply that does not would loop.
        std::pair<std::string, std::string> key{stringField(last, "id"), stringField(last, "bundle")};
        if (after && key <= *after) return fail("malformed reply from the agent");
        after = std::move(key);
    }
    return json{{"ok", true}, {"tasks", std::move(all)}};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"secretshimctl: manage secretshim secrets on this node"};
    app.require_subcommand(1);
    std::string socket(kDefaultSocket), format = "table", name, source = "-", rule;
    std::vector<std::string> grants;
    app.add_option("--socket", socket, "the agent's socket");

    auto* secret = app.add_subcommand("secret", "manage secrets");
    secret->require_subcommand(1);
    auto* create = secret->add_subcommand("create", "create a secret from FILE or - (stdin)");
    create->add_option("NAME", name)->required();
    create->add_option("FILE", source, "file holding the value, - for stdin");
    create->add_option("--grant", grants, "a grant rule (repeatable); without one the secret reaches nobody");
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
    if (create->parsed()) {
        auto mem = valueMemfd(source);
        if (!mem) {
            std::fprintf(stderr, "secretshimctl: secret \"%s\": %s\n", name.c_str(), mem.error().message.c_str());
            return 1;
        }
        const int fds[] = {mem->get()};
        reply = call(socket, {{"op", "secret.create"}, {"name", name}, {"grants", grants}}, fds);
        if (reply) std::printf("%s\n", stringField(*reply, "id").c_str());
    } else if (ls->parsed() || inspect->parsed()) {
        reply = call(socket, {{"op", ls->parsed() ? "secret.ls" : "secret.inspect"}, {"name", name}});
        if (reply && (format == "json" || inspect->parsed())) {
            const json& secrets = anyField(*reply, "secrets");
            const bool one = inspect->parsed() && secrets.is_array() && !secrets.empty();
            std::printf("%s\n", (one ? secrets[0] : secrets).dump(2).c_str());
        } else if (reply) {
            std::printf("%-32s %-32s %10s  %-20s %6s %s\n", "NAME", "ID", "SIZE", "CREATED", "GRANTS", "TASKS");
            for (const auto& s : anyField(*reply, "secrets"))
                std::printf("%-32s %-32s %10llu  %-20s %6zu %zu\n", stringField(s, "name").c_str(),
                            stringField(s, "id").c_str(), static_cast<unsigned long long>(uintField(s, "size")),
                            isoTime(intField(s, "created")).c_str(), anyField(s, "grants").size(),
                            anyField(s, "tasks").size());
        }
    } else if (grant->parsed() || revoke->parsed()) {
        reply = call(socket, {{"op", grant->parsed() ? "secret.grant" : "secret.revoke"}, {"name", name}, {"rule", rule}});
    } else if (rm->parsed()) {
        reply = call(socket, {{"op", "secret.rm"}, {"name", name}});
    } else if (tls->parsed()) {
        reply = callTaskList(socket);
        if (reply && format == "json") {
            std::printf("%s\n", anyField(*reply, "tasks").dump(2).c_str());
        } else if (reply) {
            std::printf("%-64s %s\n", "CONTAINER", "SECRETS");
            for (const auto& t : anyField(*reply, "tasks")) {
                std::string names;
                for (const auto& s : anyField(t, "secrets"))
                    names += (names.empty() ? "" : ",") + (s.is_string() ? s.get<std::string>() : s.dump());
                std::printf("%-64s %s\n", stringField(t, "id").c_str(), names.c_str());
            }
        }
    } else if (status->parsed()) {
        reply = call(socket, {{"op", "status"}});
        if (reply) std::printf("%s\n", reply->dump(2).c_str());
    }
    if (!reply) {
        std::fprintf(stderr, "secretshimctl: %s\n", reply.error().message.c_str());
        return 1;
    }
    return 0;
}
