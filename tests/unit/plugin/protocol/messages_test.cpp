// The protocol's messages: each survives its own round trip, a field of the
// wrong type is refused with one line (never thrown), a missing one keeps
// its default (older peers omit newer fields), and task pages are
// collected in order without looping on a reply that does not advance.
#include <doctest/doctest.h>

#include "plugin/protocol/messages.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;

TEST_CASE("a create request survives its round trip, with the op name both platforms use") {
    CreateRequest sent;
    sent.id = "web-1";
    sent.bundle = "/run/containerd/io.containerd.runtime.v2.task/ns1/web-1";
    sent.secrets = "db;source=api,target=/etc/app/key";
    sent.task = "t1";
    sent.identity = json{{"integration", "bundle"}};
    const json wire = sent.toJson();
    CHECK(wire["op"] == "create");
    auto got = CreateRequest::fromJson(wire);
    REQUIRE(got.has_value());
    CHECK(got->id == sent.id);
    CHECK(got->bundle == sent.bundle);
    CHECK(got->secrets == sent.secrets);
    CHECK(got->task == sent.task);
    CHECK(got->identity == sent.identity);
    CHECK(got->root.empty());
}

TEST_CASE("a field of the wrong type is refused with one line, a missing one keeps its default") {
    auto id = CreateRequest::fromJson(json{{"op", "create"}, {"id", 5}});
    REQUIRE_FALSE(id.has_value());
    CHECK(id.error().message == "malformed message: \"id\" is not a string");
    auto ok = AttachedRequest::fromJson(json{{"op", "attached"}, {"ok", 1}});
    REQUIRE_FALSE(ok.has_value());
    CHECK(ok.error().message == "malformed message: \"ok\" is not true or false");
    auto grants = SecretCreateRequest::fromJson(json{{"name", "db"}, {"grants", {"root", 7}}});
    REQUIRE_FALSE(grants.has_value());
    CHECK(grants.error().message == "malformed message: \"grants\" is not a list of strings");
    auto size = SecretCreateRequest::fromJson(json{{"name", "db"}, {"size", -1}});
    REQUIRE_FALSE(size.has_value());
    CHECK(size.error().message == "malformed message: \"size\" is not an integer in range");
    CHECK_FALSE(CreateRequest::fromJson(json::array({"op", "create"})).has_value());

    auto old = ReleaseRequest::fromJson(json{{"op", "release"}, {"id", "c1"}});  // a hook older than bundles
    REQUIRE(old.has_value());
    CHECK(old->bundle.empty());
    auto page = TaskListRequest::fromJson(json{{"op", "task.ls"}, {"after", "c1"}});
    REQUIRE(page.has_value());
    CHECK_FALSE(page->afterBundle.has_value());
}

TEST_CASE("replies: the agent's error line, and lists typed on the way back") {
    auto refused = checkOk(errorReply("secret \"zz\" not found"));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message == "secret \"zz\" not found");
    CHECK(checkOk(json{{"ok", false}}, "the agent refused without a reason").error().message ==
          "the agent refused without a reason");
    CHECK(checkOk(json{{"ok", "yes"}}).error().message == "refused");
    CHECK(checkOk(okReply()).has_value());

    SecretListReply list{{SecretInfo{"db", "0123", 12, 1700000000, {"root"}, {"web-1"}, 1, 1700000000, {}}}};
    auto back = SecretListReply::fromJson(list.toJson());
    REQUIRE(back.has_value());
    REQUIRE(back->secrets.size() == 1);
    CHECK(back->secrets[0].name == "db");
    CHECK(back->secrets[0].size == 12);
    CHECK(back->secrets[0].created == 1700000000);
    CHECK(back->secrets[0].grants == std::vector<std::string>{"root"});
    CHECK(back->secrets[0].tasks == std::vector<std::string>{"web-1"});
    CHECK_FALSE(SecretListReply::fromJson(json{{"ok", true}, {"secrets", {{{"size", "big"}}}}}).has_value());

    auto mounts = CreateReply::fromJson(json{{"ok", true}, {"files", 2}, {"mounts", {{{"target", "/run/secrets"}, {"directory", true}}}}});
    REQUIRE(mounts.has_value());
    CHECK(mounts->files == 2);
    REQUIRE(mounts->mounts.size() == 1);
    CHECK(mounts->mounts[0].directory);
}

TEST_CASE("a task page takes tasks while they fit, at least one") {
    const TaskInfo big{std::string(100, 'a'), "", {"db"}};
    TaskPageBuilder tiny(10);
    CHECK(tiny.add(big));  // the first always fits
    CHECK_FALSE(tiny.add(big));
    CHECK(tiny.page().more);
    CHECK(tiny.page().tasks.size() == 1);
    TaskPageBuilder roomy;
    for (int i = 0; i < 10; ++i) CHECK(roomy.add(big));
    CHECK_FALSE(roomy.page().more);
    CHECK(roomy.page().toJson().dump().size() <= kMaxMessage);
}

TEST_CASE("task pages are collected in order, and a page that does not advance is refused") {
    std::vector<json> asked;
    const auto twoPages = [&](const json& request) -> Result<json> {
        asked.push_back(request);
        if (!request.contains("after")) return TaskListReply{{{"a", "/a", {"db"}}}, true}.toJson();
        return TaskListReply{{{"b", "", {}}}, false}.toJson();
    };
    auto all = collectTasks(twoPages);
    REQUIRE(all.has_value());
    REQUIRE(all->tasks.size() == 2);
    CHECK(all->tasks[0].id == "a");
    CHECK(all->tasks[1].id == "b");
    REQUIRE(asked.size() == 2);
    CHECK(asked[1]["after"] == "a");
    CHECK(asked[1]["after_bundle"] == "/a");

    const auto stuck = [](const json&) -> Result<json> { return TaskListReply{{{"a", "/a", {}}}, true}.toJson(); };
    auto looped = collectTasks(stuck);
    REQUIRE_FALSE(looped.has_value());
    CHECK(looped.error().message == "malformed reply from the agent");
}

TEST_CASE("secret.rotate is secret.create's message with another op; labels travel as an object") {
    SecretCreateRequest rotate{"db", {}, std::nullopt, {}, true};
    const json sent = rotate.toJson();
    CHECK(sent["op"] == "secret.rotate");
    CHECK_FALSE(sent.contains("grants"));
    CHECK_FALSE(sent.contains("labels"));
    auto back = SecretCreateRequest::fromJson(sent);
    REQUIRE(back.has_value());
    CHECK(back->rotate);
    CHECK(back->name == "db");

    SecretCreateRequest create{"db", {"root"}, std::nullopt, {{"tier", "db"}}, false};
    auto created = SecretCreateRequest::fromJson(create.toJson());
    REQUIRE(created.has_value());
    CHECK_FALSE(created->rotate);
    CHECK(created->labels == std::map<std::string, std::string>{{"tier", "db"}});
    auto bad = SecretCreateRequest::fromJson(json{{"op", "secret.create"}, {"name", "db"}, {"labels", {{"k", 1}}}});
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message == "malformed message: \"labels\" is not an object of strings");

    SecretInfo info{"db", "0123", 12, 1700000000, {}, {}, 3, 1700000100, {{"tier", "db"}}};
    auto listed = SecretListReply::fromJson(SecretListReply{{info}}.toJson());
    REQUIRE(listed.has_value());
    CHECK(listed->secrets[0].version == 3);
    CHECK(listed->secrets[0].updated == 1700000100);
    CHECK(listed->secrets[0].labels == info.labels);
    // An agent older than rotation sends neither: version 0, no labels.
    auto old = SecretInfo::fromJson(json{{"name", "db"}, {"id", "0123"}, {"size", 1}, {"created", 5}});
    REQUIRE(old.has_value());
    CHECK(old->version == 0);
    CHECK(old->labels.empty());
}
