// The agent core's verbs, as both platforms' agents serve them: the
// platform's part and the store are stand-ins here (a unit test); the
// real agents run them in ctl_local.sh, runtime_e2e.sh and, under wine,
// tests/windows/pipe_e2e_test.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "plugin/agent/core/agent_core.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;

namespace {

// A catalog in memory; `folds` makes names case-blind, as on Windows.
class MemoryCatalog final : public SecretCatalog {
public:
    bool grants = true;
    bool folds = false;
    std::map<std::string, std::pair<SecretMeta, std::vector<std::string>>> secrets;

    bool supportsGrants() const override { return grants; }
    bool sameName(std::string_view a, std::string_view b) const override {
        if (!folds) return a == b;
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
               });
    }
    Result<SecretMeta> create(std::string_view name, mountfs::Bytes value, const std::vector<GrantRule>& rules,
                              const SecretLabels& labels) override {
        if (secrets.count(std::string(name))) return fail("secret " + quote(name) + " already exists");
        SecretMeta meta{std::string(name), "id-" + std::string(name), value.size(), 1700000000, 1, 1700000000, labels};
        std::vector<std::string> texts;
        for (const auto& r : rules) texts.push_back(r.text());
        secrets[meta.name] = {meta, texts};
        return meta;
    }
    Result<SecretMeta> rotate(std::string_view name, mountfs::Bytes value) override {
        const auto it = secrets.find(std::string(name));
        if (it == secrets.end()) return fail("secret " + quote(name) + " does not exist");
        it->second.first.size = value.size();
        it->second.first.version += 1;
        return it->second.first;
    }
    Result<std::vector<SecretMeta>> list() const override {
        std::vector<SecretMeta> out;
        for (const auto& [name, s] : secrets) out.push_back(s.first);
        return out;
    }
    std::vector<std::string> ruleTexts(const std::string& name) const override { return secrets.at(name).second; }
    Result<void> addGrant(const std::string& name, const GrantRule& rule) override {
        secrets.at(name).second.push_back(rule.text());
        return {};
    }
    Result<void> revokeGrant(const std::string& name, const GrantRule& rule) override {
        auto& texts = secrets.at(name).second;
        const auto it = std::find(texts.begin(), texts.end(), rule.text());
        if (it == texts.end()) return fail("not granted to " + rule.text());
        texts.erase(it);
        return {};
    }
    Result<void> remove(const std::string& name) override {
        if (!secrets.erase(name)) return fail("secret " + quote(name) + " does not exist");
        return {};
    }
};

// The platform's part: tasks are names of the secrets they hold.
class TestAgent final : public AgentCore {
public:
    explicit TestAgent(SecretCatalog* catalog)
        : AgentCore(catalog, [this](const std::string& line, const LogFields& f) {
              lines.push_back(line);
              fields.push_back(f);
          }) {}

    std::vector<std::string> lines;
    std::vector<LogFields> fields;  // each line's (identity pointers not kept)
    std::map<std::string, std::vector<std::string>> tasks;  // id -> secret names
    std::vector<std::string> revoked;
    std::vector<std::string> released;
    mutable bool askedUnlocked = false;  // tasksHolding() called without exclusive() held

protected:
    Result<json> release(const ReleaseRequest& request) override {
        released.push_back(request.id);
        return json{{"cleaned", tasks.erase(request.id) > 0}};
    }
    Result<json> listTasks(const TaskListRequest& request) override {
        TaskPageBuilder page;
        for (auto it = tasks.upper_bound(request.after); it != tasks.end(); ++it)
            if (!page.add({it->first, "", it->second})) break;
        return page.page().toJson();
    }
    Result<json> status() override { return json{{"tasks", tasks.size()}}; }
    Result<json> platformOp(const std::string& op, const json& request) override {
        if (op == "create") return json{{"files", 0}};
        return AgentCore::platformOp(op, request);
    }
    std::vector<std::string> tasksHolding(const std::string& name) const override {
        if (!heldElsewhere()) askedUnlocked = true;
        std::vector<std::string> ids;
        for (const auto& [id, names] : tasks)
            if (std::find(names.begin(), names.end(), name) != names.end()) ids.push_back(id);
        return ids;
    }
    void grantRevoked(const std::string& name) override { revoked.push_back(name); }
    std::unique_lock<std::mutex> exclusive() override { return std::unique_lock(mutex_); }
    Result<void> checkRotation(const SecretMeta& before, std::size_t size) const override {
        if (!heldElsewhere()) askedUnlocked = true;
        if (!refuseRotation.empty()) return fail(refuseRotation);
        checked.emplace_back(before.name, size);
        return {};
    }
    Pushed secretRotated(const SecretMeta& before, mountfs::Bytes value) override {
        if (!heldElsewhere()) askedUnlocked = true;
        rotated.emplace_back(before.name, std::string(reinterpret_cast<const char*>(value.data()), value.size()));
        return {tasksHolding(before.name).size(), 0};
    }

public:
    std::string refuseRotation;
    mutable std::vector<std::pair<std::string, std::size_t>> checked;
    std::vector<std::pair<std::string, std::string>> rotated;  // name, value (compared, never printed)

private:
    // Whether another thread finds mutex_ taken (its owner may not ask).
    bool heldElsewhere() const {
        bool got = false;
        std::thread([&] {
            if (mutex_.try_lock()) {
                got = true;
                mutex_.unlock();
            }
        }).join();
        return !got;
    }
    mutable std::mutex mutex_;
};

// A value reader that hands back `marker` and counts its calls.
struct Reader {
    std::string marker;
    int calls = 0;
    ValueReader fn() {
        return [this](const SecretCreateRequest&) -> Result<SecureBuffer> {
            ++calls;
            auto buffer = SecureBuffer::allocate(marker.size());
            if (!buffer) return propagate(buffer);
            std::memcpy(buffer->data(), marker.data(), marker.size());
            return buffer;
        };
    }
};

std::string errorOf(const json& reply) {
    REQUIRE(reply.is_object());
    CHECK(reply.value("ok", true) == false);
    return reply.value("error", std::string());
}

bool okay(const json& reply) { return reply.is_object() && reply.value("ok", false) == true; }

}  // namespace

TEST_CASE("secret create, ls and inspect go through the catalog; the log names the secret, never its value") {
    MemoryCatalog catalog;
    TestAgent agent(&catalog);
    Reader reader{"marker-7f3a9c"};
    const json created =
        agent.handle({{"op", "secret.create"}, {"name", "db"}, {"grants", {"root"}}}, reader.fn());
    REQUIRE(okay(created));
    CHECK(created["id"] == "id-db");
    CHECK(reader.calls == 1);
    REQUIRE(catalog.secrets.count("db"));
    CHECK(catalog.secrets["db"].first.size == reader.marker.size());
    CHECK(catalog.secrets["db"].second == std::vector<std::string>{"root"});
    REQUIRE(agent.lines.size() == 1);
    CHECK(agent.lines[0] == "secret \"db\" created (13 bytes, 1 grant(s))");
    for (const auto& line : agent.lines) CHECK(line.find(reader.marker) == std::string::npos);
    CHECK(agent.fields[0].event == audit::create);
    CHECK(agent.fields[0].secrets == "db");
    CHECK(agent.fields[0].rule == "root");

    agent.tasks["c1"] = {"db"};
    const json listed = agent.handle({{"op", "secret.ls"}}, reader.fn());
    REQUIRE(okay(listed));
    auto list = SecretListReply::fromJson(listed);
    REQUIRE(list);
    REQUIRE(list->secrets.size() == 1);
    CHECK(list->secrets[0].name == "db");
    CHECK(list->secrets[0].grants == std::vector<std::string>{"root"});
    CHECK(list->secrets[0].tasks == std::vector<std::string>{"c1"});
    CHECK_FALSE(agent.askedUnlocked);

    CHECK(errorOf(agent.handle({{"op", "secret.inspect"}, {"name", "DB"}}, reader.fn())) ==
          "secret \"DB\" not found");
    catalog.folds = true;  // as on Windows
    CHECK(okay(agent.handle({{"op", "secret.inspect"}, {"name", "DB"}}, reader.fn())));
}

TEST_CASE("a log function of the line alone (Windows) gets each line; fields are dropped") {
    std::vector<std::string> lines;
    const LogFn log = [&](const std::string& line) { lines.push_back(line); };
    log("one");
    log("two", {.level = LogLevel::warning, .event = audit::refuse, .reason = "not_granted"});
    CHECK(lines == std::vector<std::string>{"one", "two"});
    LogFn none;
    none("dropped, no crash");
}

TEST_CASE("a secret in use is not removed, and the refusal names who holds it") {
    MemoryCatalog catalog;
    TestAgent agent(&catalog);
    Reader reader{"marker-b1"};
    REQUIRE(okay(agent.handle({{"op", "secret.create"}, {"name", "s"}}, reader.fn())));
    agent.tasks["c1"] = {"s"};
    agent.tasks["c2"] = {"s", "t"};
    CHECK(errorOf(agent.handle({{"op", "secret.rm"}, {"name", "s"}}, reader.fn())) ==
          "secret \"s\" is in use by a running task (\"c1\" and 1 more)");
    CHECK(catalog.secrets.count("s") == 1);
    CHECK_FALSE(agent.askedUnlocked);
    agent.tasks.erase("c1");
    CHECK(errorOf(agent.handle({{"op", "secret.rm"}, {"name", "s"}}, reader.fn())) ==
          "secret \"s\" is in use by a running task (\"c2\")");
    agent.tasks.clear();
    CHECK(okay(agent.handle({{"op", "secret.rm"}, {"name", "s"}}, reader.fn())));
    CHECK(catalog.secrets.empty());
    CHECK(agent.lines.back() == "secret \"s\" removed");
    CHECK(agent.fields.back().event == audit::remove);
    CHECK(agent.fields.back().secrets == "s");
}

TEST_CASE("a store without grants refuses a rule before the value is read") {
    MemoryCatalog catalog;
    catalog.grants = false;
    TestAgent agent(&catalog);
    Reader reader{"marker-c2"};
    CHECK(errorOf(agent.handle({{"op", "secret.create"}, {"name", "db"}, {"grants", {"root"}}}, reader.fn())) ==
          "grant rules are not supported on this node's store (Windows)");
    CHECK(reader.calls == 0);
    CHECK(catalog.secrets.empty());
    CHECK(errorOf(agent.handle({{"op", "secret.grant"}, {"name", "db"}, {"rule", "root"}}, reader.fn())) ==
          "grant rules are not supported on this node's store (Windows)");
    CHECK(okay(agent.handle({{"op", "secret.create"}, {"name", "db"}}, reader.fn())));
    CHECK(reader.calls == 1);
}

TEST_CASE("a revoked grant reaches the platform's running tasks; an added one does not") {
    MemoryCatalog catalog;
    TestAgent agent(&catalog);
    Reader reader{"marker-d4"};
    REQUIRE(okay(agent.handle({{"op", "secret.create"}, {"name", "db"}}, reader.fn())));
    REQUIRE(okay(agent.handle({{"op", "secret.grant"}, {"name", "db"}, {"rule", "podman,name=web-*"}}, reader.fn())));
    CHECK(agent.revoked.empty());
    CHECK(agent.lines.back() == "secret \"db\" granted to podman,name=web-*");
    CHECK(agent.fields.back().event == audit::grant);
    CHECK(agent.fields.back().rule == "podman,name=web-*");
    REQUIRE(okay(agent.handle({{"op", "secret.revoke"}, {"name", "db"}, {"rule", "podman,name=web-*"}}, reader.fn())));
    CHECK(agent.fields.back().event == audit::ungrant);
    CHECK(agent.fields.back().secrets == "db");
    CHECK(agent.fields.back().rule == "podman,name=web-*");
    CHECK(agent.fields.back().level == LogLevel::info);
    CHECK(agent.revoked == std::vector<std::string>{"db"});
    // A rule the secret lacks: refused, nothing revoked.
    CHECK(errorOf(agent.handle({{"op", "secret.revoke"}, {"name", "db"}, {"rule", "root"}}, reader.fn())) ==
          "not granted to root");
    CHECK(agent.revoked.size() == 1);
    CHECK_FALSE(errorOf(agent.handle({{"op", "secret.grant"}, {"name", "db"}, {"rule", "nobody"}}, reader.fn())).empty());
}

TEST_CASE("secret rotate: checked by the platform before the store changes, then pushed to the running tasks") {
    MemoryCatalog catalog;
    TestAgent agent(&catalog);
    Reader first{"marker-r1"};
    const json create = {{"op", "secret.create"}, {"name", "db"}, {"grants", {"root"}}, {"labels", {{"tier", "db"}}}};
    REQUIRE(okay(agent.handle(create, first.fn())));
    agent.tasks["c1"] = {"db"};
    Reader second{"marker-r2-longer"};

    // Refused by the platform: the store is as it was, nothing pushed, the line says why.
    agent.refuseRotation = "container \"c1\" would hold too much";
    CHECK(errorOf(agent.handle({{"op", "secret.rotate"}, {"name", "db"}}, second.fn())) ==
          "secret \"db\" not rotated: container \"c1\" would hold too much");
    CHECK(catalog.secrets["db"].first.version == 1);
    CHECK(catalog.secrets["db"].first.size == first.marker.size());
    CHECK(agent.rotated.empty());

    agent.refuseRotation.clear();
    const json done = agent.handle({{"op", "secret.rotate"}, {"name", "db"}}, second.fn());
    REQUIRE(okay(done));
    CHECK(done["version"] == 2);
    CHECK(done["updated"] == 1);
    CHECK(agent.checked == std::vector<std::pair<std::string, std::size_t>>{{"db", second.marker.size()}});
    REQUIRE(agent.rotated.size() == 1);
    CHECK(agent.rotated[0].first == "db");
    const bool pushedNew = agent.rotated[0].second == second.marker;  // compared, never printed
    CHECK(pushedNew);
    CHECK(catalog.secrets["db"].first.size == second.marker.size());
    // Grants and labels stay.
    CHECK(catalog.secrets["db"].second == std::vector<std::string>{"root"});
    CHECK(catalog.secrets["db"].first.labels == SecretLabels{{"tier", "db"}});
    CHECK(agent.lines.back() == "secret \"db\" rotated to version 2 (16 bytes): 1 running container(s) updated");
    for (const auto& line : agent.lines) {
        CHECK(line.find(first.marker) == std::string::npos);
        CHECK(line.find(second.marker) == std::string::npos);
    }
    CHECK_FALSE(agent.askedUnlocked);

    // Labels show in the listing; a missing secret and labels on a rotation are refused.
    auto list = SecretListReply::fromJson(agent.handle({{"op", "secret.ls"}}, first.fn()));
    REQUIRE(list);
    REQUIRE(list->secrets.size() == 1);
    CHECK(list->secrets[0].version == 2);
    CHECK(list->secrets[0].labels == std::map<std::string, std::string>{{"tier", "db"}});
    CHECK(errorOf(agent.handle({{"op", "secret.rotate"}, {"name", "nope"}}, second.fn())) ==
          "secret \"nope\" does not exist");
    CHECK(errorOf(agent.handle({{"op", "secret.rotate"}, {"name", "db"}, {"labels", {{"a", "b"}}}}, second.fn())) ==
          "secret \"db\": a rotation keeps the grants and labels it has");
    CHECK(agent.rotated.size() == 1);
}

TEST_CASE("secret create refuses bad labels in one line before the value is read") {
    MemoryCatalog catalog;
    TestAgent agent(&catalog);
    Reader reader{"marker-l1"};
    CHECK(errorOf(agent.handle({{"op", "secret.create"}, {"name", "db"}, {"labels", {{"", "x"}}}}, reader.fn())) ==
          "secret \"db\": a label with an empty key");
    CHECK(errorOf(agent.handle({{"op", "secret.create"}, {"name", "db"}, {"labels", {{"a b", "x"}}}}, reader.fn()))
              .find("label key \"a b\"") != std::string::npos);
    CHECK(reader.calls == 0);
    CHECK(catalog.secrets.empty());
}

TEST_CASE("a node without a local store refuses every admin verb in one line") {
    TestAgent agent(nullptr);
    Reader reader{"marker-e5"};
    for (const char* op :
         {"secret.create", "secret.rotate", "secret.ls", "secret.inspect", "secret.rm", "secret.grant"}) {
        const std::string error = errorOf(agent.handle({{"op", op}, {"name", "db"}, {"rule", "root"}}, reader.fn()));
        CHECK(error.rfind("this node takes its secrets from etcd", 0) == 0);
        CHECK(error.find('\n') == std::string::npos);
    }
    CHECK(reader.calls == 0);
}

TEST_CASE("release, task.ls and status are the platform's; other ops go to it or are refused") {
    MemoryCatalog catalog;
    TestAgent agent(&catalog);
    Reader reader{"marker-f6"};
    agent.tasks["a"] = {"db"};
    agent.tasks["b"] = {"db", "api"};

    const json page = agent.handle({{"op", "task.ls"}, {"after", "a"}}, reader.fn());
    REQUIRE(okay(page));
    auto tasks = TaskListReply::fromJson(page);
    REQUIRE(tasks);
    REQUIRE(tasks->tasks.size() == 1);
    CHECK(tasks->tasks[0].id == "b");

    const json released = agent.handle({{"op", "release"}, {"id", "a"}}, reader.fn());
    REQUIRE(okay(released));
    CHECK(released["cleaned"] == true);
    CHECK(agent.released == std::vector<std::string>{"a"});
    CHECK(agent.handle({{"op", "status"}}, reader.fn())["tasks"] == 1);
    CHECK(okay(agent.handle({{"op", "create"}, {"id", "x"}}, reader.fn())));

    CHECK(errorOf(agent.handle({{"op", "no.such"}}, reader.fn())).find("no.such") != std::string::npos);
    CHECK(errorOf(agent.handle({{"op", "secret.nope"}, {"name", "db"}}, reader.fn())).find("secret.nope") !=
          std::string::npos);
    // A field of the wrong type is one line, not an exception.
    CHECK_FALSE(errorOf(agent.handle({{"op", "release"}, {"id", 7}}, reader.fn())).empty());
    CHECK_FALSE(errorOf(agent.handle({{"op", "secret.rm"}, {"name", json::array()}}, reader.fn())).empty());
    CHECK_FALSE(errorOf(agent.handle(json::array(), reader.fn())).empty());
    CHECK(reader.calls == 0);
}
