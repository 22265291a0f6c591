// task.ls in pages: with more tasks than one 64 KiB message holds, every
// page fits and the pages together list each task once, in order, also
// when containers in two containerd namespaces share an id.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "plugin/agent/task_list.hpp"
#include "plugin/protocol/messages.hpp"

using namespace secretshim::plugin;
using nlohmann::json;

namespace {

struct Tasks {
    std::map<TaskKey, std::vector<std::string>> secrets;
    std::map<TaskKey, const std::vector<std::string>*> byKey() const {
        std::map<TaskKey, const std::vector<std::string>*> out;
        for (const auto& [key, names] : secrets) out.emplace(key, &names);
        return out;
    }
};

std::string bundleOf(const std::string& ns, const std::string& id) {
    return "/run/containerd/io.containerd.runtime.v2.task/" + ns + "/" + id;
}

TaskKey keyOf(const json& task) { return {task["id"].get<std::string>(), task["bundle"].get<std::string>()}; }

// 500 tasks as runc names them (64 hex characters) with 10 secrets each:
// about 180 KiB of JSON, the case that used to fail.
Tasks manyTasks(std::size_t count) {
    Tasks t;
    for (std::size_t i = 0; i < count; ++i) {
        std::string id = std::to_string(i * 7919 % 100000);
        id = std::string(64 - id.size(), 'a') + id;
        auto& names = t.secrets[{id, bundleOf("default", id)}];
        for (int s = 0; s < 10; ++s) names.push_back("app_secret_number_" + std::to_string(s));
    }
    return t;
}

// Pages until "more" is false, as secretshimctl asks for them: after the
// last task's id and bundle (`idOnly`: after its id alone, as a client from
// before bundles asks).
std::vector<json> allPages(const Tasks& t, std::size_t budget = kTaskPageBudget, bool idOnly = false) {
    const auto byKey = t.byKey();
    std::vector<json> pages;
    TaskPageStart start;
    for (int guard = 0; guard < 10000; ++guard) {
        pages.push_back(taskListPage(byKey, start, budget));
        const json& page = pages.back();
        REQUIRE(page["ok"] == true);
        if (!page["more"].get<bool>()) break;
        REQUIRE(!page["tasks"].empty());
        const TaskKey last = keyOf(page["tasks"].back());
        start = {last.id, idOnly ? std::nullopt : std::optional<std::string>(last.bundle)};
    }
    return pages;
}

// Every task in one JSON document, as a single reply would hold them.
json oneReplyOf(const Tasks& t) {
    json all = json::array();
    for (const auto& [key, names] : t.secrets) all.push_back({{"id", key.id}, {"bundle", key.bundle}, {"secrets", names}});
    return all;
}

std::vector<TaskKey> listed(const std::vector<json>& pages) {
    std::vector<TaskKey> keys;
    for (const auto& page : pages)
        for (const auto& task : page["tasks"]) keys.push_back(keyOf(task));
    return keys;
}

}  // namespace

TEST_CASE("500 tasks: each page fits in one message, together they list every task once, in order") {
    const Tasks t = manyTasks(500);
    CHECK(oneReplyOf(t).dump().size() > kMaxMessage);  // one reply would not fit
    const auto pages = allPages(t);
    CHECK(pages.size() >= 3);
    for (const auto& page : pages) {
        CHECK(page.dump().size() <= kMaxMessage);
        for (const auto& task : page["tasks"]) CHECK(task["secrets"] == json(t.secrets.at(keyOf(task))));
    }
    const auto keys = listed(pages);
    CHECK(keys.size() == 500);
    CHECK(std::set<TaskKey>(keys.begin(), keys.end()).size() == 500);
    CHECK(std::is_sorted(keys.begin(), keys.end()));
    CHECK(pages.back()["more"] == false);
}

TEST_CASE("few tasks: one page, more is false; none: an empty list") {
    const auto one = allPages(manyTasks(3));
    REQUIRE(one.size() == 1);
    CHECK(one[0]["tasks"].size() == 3);
    CHECK(one[0]["more"] == false);
    const auto none = allPages(Tasks{});
    REQUIRE(none.size() == 1);
    CHECK(none[0]["tasks"].empty());
    CHECK(none[0]["more"] == false);
}

TEST_CASE("after a task that is gone, the next page starts at the next one") {
    Tasks t;
    for (const char* id : {"a", "c", "e"}) t.secrets[{id, "/b"}] = {"s"};
    const auto byKey = t.byKey();
    const json page = taskListPage(byKey, {"b", "/b"});
    REQUIRE(page["tasks"].size() == 2);
    CHECK(page["tasks"][0]["id"] == "c");
    CHECK(page["tasks"][0]["bundle"] == "/b");
    CHECK(taskListPage(byKey, {"c", "/a"})["tasks"][0]["id"] == "c");  // another bundle of c: c is next
    CHECK(taskListPage(byKey, {"e", "/b"})["tasks"].empty());
}

TEST_CASE("the same id in several namespaces: each listed once, in order, across page boundaries") {
    // 300 ids, each in three namespaces, with a budget of a few tasks per
    // page: most boundaries fall between two tasks with the same id.
    Tasks t;
    for (int i = 0; i < 300; ++i) {
        const std::string id = "web-" + std::to_string(1000 + i);
        for (const char* ns : {"ns1", "ns2", "k8s.io"}) t.secrets[{id, bundleOf(ns, id)}] = {std::string("s_") + ns};
    }
    for (const std::size_t budget : {std::size_t(300), std::size_t(700), kTaskPageBudget}) {
        CAPTURE(budget);
        const auto pages = allPages(t, budget);
        const auto keys = listed(pages);
        CHECK(keys.size() == 900);
        CHECK(std::set<TaskKey>(keys.begin(), keys.end()).size() == 900);
        CHECK(std::is_sorted(keys.begin(), keys.end()));
        for (const auto& page : pages)
            for (const auto& task : page["tasks"]) CHECK(task["secrets"] == json(t.secrets.at(keyOf(task))));
    }
}

TEST_CASE("a client from before bundles pages by id: never a repeat, nor a loop") {
    Tasks t;
    for (const char* id : {"a", "b", "c"})
        for (const char* ns : {"ns1", "ns2"}) t.secrets[{id, bundleOf(ns, id)}] = {"s"};
    const auto byKey = t.byKey();
    // "after" alone: past every task with that id.
    const json page = taskListPage(byKey, {"a", std::nullopt});
    REQUIRE(page["tasks"].size() == 4);
    CHECK(page["tasks"][0]["id"] == "b");
    CHECK(taskListPage(byKey, {"c", std::nullopt})["tasks"].empty());
    // Paged so, each id is listed at least once and no task twice.
    const auto keys = listed(allPages(t, 150, true));
    CHECK(std::set<TaskKey>(keys.begin(), keys.end()).size() == keys.size());
    std::set<std::string> ids;
    for (const auto& k : keys) ids.insert(k.id);
    CHECK(ids == std::set<std::string>{"a", "b", "c"});
}

TEST_CASE("each listed task carries its bundle; a task created without one lists it empty") {
    Tasks t;
    t.secrets[{"old", ""}] = {"s"};
    t.secrets[{"new", "/run/x/new"}] = {"s"};
    const json page = taskListPage(t.byKey(), {});
    REQUIRE(page["tasks"].size() == 2);
    CHECK(page["tasks"][0]["id"] == "new");
    CHECK(page["tasks"][0]["bundle"] == "/run/x/new");
    CHECK(page["tasks"][1]["id"] == "old");
    CHECK(page["tasks"][1]["bundle"] == "");
}

TEST_CASE("a task larger than the budget is still listed, alone on its page") {
    Tasks t;
    t.secrets[{"big", "/b"}] = std::vector<std::string>(100, std::string(60, 'x'));
    t.secrets[{"small", "/b"}] = {"s"};
    const auto pages = allPages(t, 1000);
    REQUIRE(pages.size() == 2);
    CHECK(pages[0]["tasks"].size() == 1);
    CHECK(pages[0]["more"] == true);
    CHECK(pages[1]["tasks"][0]["id"] == "small");
}
