#include <doctest/doctest.h>

#include "platform/linux/id_map.hpp"

using secretshim::platform::IdMap;

TEST_CASE("the initial namespace's map is the identity") {
    auto map = IdMap::parse("         0          0 4294967295\n");
    REQUIRE(map.has_value());
    CHECK(map->identity());
    CHECK(map->toHost(0).value() == 0);
    CHECK(map->toHost(4294967294u).value() == 4294967294u);
}

TEST_CASE("a container's map: ids inside ranges map, others do not") {
    auto map = IdMap::parse("0 100000 65536\n70000 5000 2\n");
    REQUIRE(map.has_value());
    CHECK_FALSE(map->identity());
    CHECK(map->toHost(0).value() == 100000);
    CHECK(map->toHost(1000).value() == 101000);
    CHECK(map->toHost(65535).value() == 165535);
    CHECK(map->toHost(70001).value() == 5001);
    auto none = map->toHost(65536);
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().message == "65536 has no mapping in the container's user namespace");
    CHECK_FALSE(map->toHost(70002).has_value());
}

TEST_CASE("an empty map maps nothing") {
    auto map = IdMap::parse("");
    REQUIRE(map.has_value());
    CHECK_FALSE(map->identity());
    CHECK_FALSE(map->toHost(0).has_value());
}

TEST_CASE("malformed maps are refused") {
    for (const char* bad : {"0 100000\n", "0 100000 0\n", "a b c\n", "0 1 2 3\n", "0 4294967295 2\n", "-1 0 1\n"}) {
        CAPTURE(bad);
        CHECK_FALSE(IdMap::parse(bad).has_value());
    }
}
