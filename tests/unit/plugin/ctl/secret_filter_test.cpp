#include <doctest/doctest.h>

#include "plugin/ctl/secret_filter.hpp"

using namespace secretshim::plugin;

namespace {

SecretInfo secret(std::string name, std::string id, std::map<std::string, std::string> labels) {
    SecretInfo s;
    s.name = std::move(name);
    s.id = std::move(id);
    s.labels = std::move(labels);
    return s;
}

bool matches(const std::vector<std::string>& filters, const SecretInfo& s) {
    auto filter = SecretFilter::parse(filters);
    REQUIRE(filter.has_value());
    return filter->matches(s);
}

}  // namespace

TEST_CASE("label=KEY needs the label, label=KEY=VALUE its value too; every filter must match") {
    const auto db = secret("db_pass", "abcd01", {{"tier", "db"}, {"team", "payments"}, {"empty", ""}});
    const auto web = secret("web_key", "ef0123", {{"tier", "web"}});
    CHECK(matches({}, db));
    CHECK(matches({"label=tier"}, db));
    CHECK(matches({"label=tier"}, web));
    CHECK_FALSE(matches({"label=team"}, web));
    CHECK(matches({"label=tier=db"}, db));
    CHECK_FALSE(matches({"label=tier=db"}, web));
    CHECK(matches({"label=empty="}, db));
    CHECK_FALSE(matches({"label=empty=x"}, db));
    CHECK(matches({"label=tier", "label=team=payments"}, db));
    CHECK_FALSE(matches({"label=tier=db", "label=team=other"}, db));
    CHECK(matches({"name=db"}, db));
    CHECK_FALSE(matches({"name=db"}, web));
    CHECK_FALSE(matches({"name=db_pass_long"}, db));
    CHECK(matches({"id=ef"}, web));
    CHECK_FALSE(matches({"id=ef", "label=tier=db"}, web));
}

TEST_CASE("an unreadable filter is refused in one line") {
    const auto refusal = [](const std::string& text) {
        auto filter = SecretFilter::parse({text});
        return filter ? std::string("parsed") : filter.error().message;
    };
    CHECK(refusal("colour=red") == "--filter \"colour=red\": expected label=KEY, label=KEY=VALUE, name=NAME or id=ID");
    CHECK(refusal("label") == "--filter \"label\": expected label=KEY, label=KEY=VALUE, name=NAME or id=ID");
    CHECK(refusal("name=") == "--filter \"name=\": expected label=KEY, label=KEY=VALUE, name=NAME or id=ID");
    CHECK(refusal("label==v") == "--filter \"label==v\": the label key is empty");
}
