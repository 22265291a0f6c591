// task.ls in pages: with more tasks than one 64 KiB message holds, every
// page fits and the pages together list each task once, in order.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "plugin/agent/task_list.hpp"
#include "plugin/protocol/messages.hpp"

using namespace secretshim::plugin;
using nlohmann::json;

namespace {

struct Tasks {
    std::map<std::string, std::vector<std::string>> secrets;
    std::map<std::string, const std::vector<std::string>*> byId() const {
        std::map<std::string, const std::vector<std::string>*> out;
        for (const auto& [id, names] : secrets) out.emplace(id, &names);
        return out;
    }
};

// 500 tasks as runc names them (64 hex characters) with 10 secrets each:
// about 180 KiB of JSON, the case that used to fail.
Tasks manyTasks(std::size_t count) {
    Tasks t;
    for (std::size_t i = 0; i < count; ++i) {
        std::string id = std::to_string(i * 7919 % 100000);
        id = std::string(64 - id.size(), 'a') + id;
        auto& names = t.secrets[id];
        for (int s = 0; s < 10; ++s) names.push_back("app_secret_number_" + std::to_string(s));
    }
    return t;
}

// Pages until "more" is false, as secretshimctl asks for them.
std::vector<json> allPages(const Tasks& t, std::size_t budget = kTaskPageBudget) {
    const auto byId = t.byId();
    std::vector<json> pages;
    std::string after;
    for (int guard = 0; guard < 10000; ++guard) {
        pages.push_back(taskListPage(byId, after, budget));
        const json& page = pages.back();
        REQUIRE(page["ok"] == true);
        if (!page["more"].get<bool>()) break;
        REQUIRE(!page["tasks"].empty());
        after = page["tasks"].back()["id"].get<std::string>();
    }
    return pages;
}

}  // namespace

TEST_CASE("500 tasks: each page fits in one message, together they list every task once, in order") {
    const Tasks t = manyTasks(500);
    CHECK(json(t.secrets).dump().size() > kMaxMessage);  // one reply would not fit
    const auto pages = allPages(t);
    CHECK(pages.size() >= 3);
    std::vector<std::string> listed;
    for (const auto& page : pages) {
        CHECK(page.dump().size() <= kMaxMessage);
        for (const auto& task : page["tasks"]) {
            listed.push_back(task["id"].get<std::string>());
            CHECK(task["secrets"] == json(t.secrets.at(task["id"].get<std::string>())));
        }
    }
    CHECK(listed.size() == 500);
    CHECK(std::set<std::string>(listed.begin(), listed.end()).size() == 500);
    CHECK(std::is_sorted(listed.begin(), listed.end()));
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

TEST_CASE("after an id that is gone, the next page starts at the next id") {
    Tasks t;
    for (const char* id : {"a", "c", "e"}) t.secrets[id] = {"s"};
    const auto byId = t.byId();
    const json page = taskListPage(byId, "b");
    REQUIRE(page["tasks"].size() == 2);
    CHECK(page["tasks"][0]["id"] == "c");
    CHECK(taskListPage(byId, "e")["tasks"].empty());
}

TEST_CASE("a task larger than the budget is still listed, alone on its page") {
    Tasks t;
    t.secrets["big"] = std::vector<std::string>(100, std::string(60, 'x'));
    t.secrets["small"] = {"s"};
    const auto pages = allPages(t, 1000);
    REQUIRE(pages.size() == 2);
    CHECK(pages[0]["tasks"].size() == 1);
    CHECK(pages[0]["more"] == true);
    CHECK(pages[1]["tasks"][0]["id"] == "small");
}
