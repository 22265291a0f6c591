// Tests for planning the layout of a task's secrets view (mountfs/view_layout).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mountfs/view_layout.hpp"

using namespace secretshim::mountfs;

namespace {

SecretRef ref(std::string source, std::string target, std::uint32_t uid = 0,
              std::uint32_t gid = 0, std::uint32_t mode = kDefaultMode) {
    SecretRef r;
    r.source = std::move(source);
    r.target = std::move(target);
    r.uid = uid;
    r.gid = gid;
    r.mode = mode;
    return r;
}

ViewLayout planned(const std::vector<SecretRef>& refs) {
    auto r = planView(refs);
    if (!r) FAIL_CHECK("unexpected error: " << r.error().message);
    REQUIRE(r.has_value());
    return std::move(*r);
}

}  // namespace

TEST_CASE("the view's two areas are named dir and file") {
    CHECK(kViewDir == "dir");
    CHECK(kViewFiles == "file");
}

TEST_CASE("no references give an empty layout") {
    const ViewLayout layout = planned({});
    CHECK(layout.entries.empty());
    CHECK(layout.directories.empty());
    CHECK_FALSE(layout.hasDirectoryMount());
    CHECK_FALSE(ViewLayout{}.hasDirectoryMount());
}

TEST_CASE("targets under /run/secrets go into the directory area") {
    const SecretRef db = ref("db", "/run/secrets/db", 10, 20, 0400);
    const ViewLayout layout = planned({db});
    REQUIRE(layout.entries.size() == 1);
    const ViewEntry& entry = layout.entries[0];
    CHECK(entry.file == "dir/db");
    CHECK(entry.inDirectory);
    CHECK(entry.ref == db);
    CHECK(layout.directories.empty());
    CHECK(layout.hasDirectoryMount());

    SUBCASE("the file is named after the target, not the secret") {
        const ViewLayout renamed = planned({ref("db", "/run/secrets/database.pw")});
        REQUIRE(renamed.entries.size() == 1);
        CHECK(renamed.entries[0].file == "dir/database.pw");
        CHECK(renamed.entries[0].inDirectory);
    }
}

TEST_CASE("nested targets under /run/secrets create their parent directories") {
    SUBCASE("parents come before children") {
        const ViewLayout layout = planned({ref("c", "/run/secrets/a/b/c")});
        REQUIRE(layout.entries.size() == 1);
        CHECK(layout.entries[0].file == "dir/a/b/c");
        CHECK(layout.entries[0].inDirectory);
        CHECK(layout.directories == std::vector<std::string>{"dir/a", "dir/a/b"});
    }
    SUBCASE("shared parents are listed once") {
        const ViewLayout layout = planned({ref("c", "/run/secrets/a/b/c"),
                                           ref("d", "/run/secrets/a/d"),
                                           ref("e", "/run/secrets/a/b/e"),
                                           ref("f", "/run/secrets/x/f"),
                                           ref("g", "/run/secrets/g")});
        REQUIRE(layout.entries.size() == 5);
        CHECK(layout.entries[0].file == "dir/a/b/c");
        CHECK(layout.entries[1].file == "dir/a/d");
        CHECK(layout.entries[2].file == "dir/a/b/e");
        CHECK(layout.entries[3].file == "dir/x/f");
        CHECK(layout.entries[4].file == "dir/g");
        CHECK(layout.directories == std::vector<std::string>{"dir/a", "dir/a/b", "dir/x"});
    }
    SUBCASE("a shallower target after a deeper one adds nothing new") {
        const ViewLayout layout =
            planned({ref("c", "/run/secrets/a/b/c"), ref("d", "/run/secrets/a/d")});
        CHECK(layout.directories == std::vector<std::string>{"dir/a", "dir/a/b"});
    }
    SUBCASE("targets elsewhere create their parents under file/") {
        const ViewLayout layout = planned({ref("a", "/etc/app/deep/a")});
        CHECK(layout.entries[0].file == "file/etc/app/deep/a");
        CHECK(layout.directories == std::vector<std::string>{"file/etc", "file/etc/app", "file/etc/app/deep"});
    }
}

TEST_CASE("targets outside /run/secrets each get a file named by the target") {
    SUBCASE("the target's path under file/, whatever its position among the references") {
        const ViewLayout layout = planned({ref("a", "/run/secrets/a"), ref("b", "/etc/app/b"),
                                           ref("c", "/run/secrets/c"), ref("d", "/d")});
        REQUIRE(layout.entries.size() == 4);
        CHECK(layout.entries[0].file == "dir/a");
        CHECK(layout.entries[0].inDirectory);
        CHECK(layout.entries[1].file == "file/etc/app/b");
        CHECK_FALSE(layout.entries[1].inDirectory);
        CHECK(layout.entries[2].file == "dir/c");
        CHECK(layout.entries[2].inDirectory);
        CHECK(layout.entries[3].file == "file/d");
        CHECK_FALSE(layout.entries[3].inDirectory);
        CHECK(layout.hasDirectoryMount());
        CHECK(layout.directories == std::vector<std::string>{"file/etc", "file/etc/app"});
        // The same target alone, or after others: the same file (a view found
        // again from its tmpfs after live changes knows each file by its target).
        CHECK(planned({ref("b", "/etc/app/b")}).entries[0].file == "file/etc/app/b");
    }
    SUBCASE("entries keep the order and content of the references") {
        const std::vector<SecretRef> refs = {ref("b", "/etc/b", 1, 2, 0600),
                                             ref("a", "/run/secrets/a", 3, 4, 0640)};
        const ViewLayout layout = planned(refs);
        REQUIRE(layout.entries.size() == 2);
        CHECK(layout.entries[0].ref == refs[0]);
        CHECK(layout.entries[1].ref == refs[1]);
        CHECK(layout.entries[0].file == "file/etc/b");
    }
    SUBCASE("a directory that only starts like /run/secrets is elsewhere") {
        const ViewLayout layout = planned({ref("a", "/run/secretsfoo"), ref("b", "/run/other/b")});
        REQUIRE(layout.entries.size() == 2);
        CHECK(layout.entries[0].file == "file/run/secretsfoo");
        CHECK_FALSE(layout.entries[0].inDirectory);
        CHECK(layout.entries[1].file == "file/run/other/b");
        CHECK_FALSE(layout.entries[1].inDirectory);
        CHECK(layout.directories == std::vector<std::string>{"file/run", "file/run/other"});
    }
    SUBCASE("with no target under /run/secrets there is no directory mount") {
        const ViewLayout layout = planned({ref("a", "/etc/a"), ref("b", "/opt/b")});
        CHECK_FALSE(layout.hasDirectoryMount());
        CHECK(layout.directories == std::vector<std::string>{"file/etc", "file/opt"});
    }
}

TEST_CASE("two references to one secret keep their own owner and mode") {
    const std::vector<SecretRef> refs = {ref("db", "/run/secrets/db", 1000, 1001, 0400),
                                         ref("db", "/etc/app/db", 33, 34, 0640)};
    const ViewLayout layout = planned(refs);
    REQUIRE(layout.entries.size() == 2);
    const ViewEntry& first = layout.entries[0];
    const ViewEntry& second = layout.entries[1];
    CHECK(first.file != second.file);
    CHECK(first.file == "dir/db");
    CHECK(second.file == "file/etc/app/db");
    CHECK(first.ref.source == "db");
    CHECK(second.ref.source == "db");
    CHECK(first.ref.uid == 1000u);
    CHECK(first.ref.gid == 1001u);
    CHECK(first.ref.mode == 0400u);
    CHECK(second.ref.uid == 33u);
    CHECK(second.ref.gid == 34u);
    CHECK(second.ref.mode == 0640u);

    SUBCASE("also when both are under /run/secrets") {
        const ViewLayout both = planned({ref("db", "/run/secrets/db", 0, 0, 0444),
                                         ref("db", "/run/secrets/copy/db", 5, 6, 0600)});
        REQUIRE(both.entries.size() == 2);
        CHECK(both.entries[0].file == "dir/db");
        CHECK(both.entries[1].file == "dir/copy/db");
        CHECK(both.entries[0].ref.mode == 0444u);
        CHECK(both.entries[1].ref.mode == 0600u);
        CHECK(both.entries[1].ref.uid == 5u);
        CHECK(both.entries[1].ref.gid == 6u);
        CHECK(both.directories == std::vector<std::string>{"dir/copy"});
    }
}

TEST_CASE("planView refuses references that do not fit together") {
    SUBCASE("two references with the same target") {
        const auto r = planView({ref("a", "/run/secrets/x"), ref("b", "/run/secrets/x")});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message == R"(secrets "a" and "b" both target "/run/secrets/x")");
        CHECK(r.error().code == 0);
    }
    SUBCASE("the same secret twice at the same target") {
        const auto r = planView({ref("a", "/etc/a", 1), ref("a", "/etc/a", 2)});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message == R"(secrets "a" and "a" both target "/etc/a")");
    }
    SUBCASE("a target inside another") {
        const auto r = planView({ref("a", "/run/secrets/x"), ref("b", "/run/secrets/x/y")});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message ==
              R"(target "/run/secrets/x/y" of secret "b" lies inside target "/run/secrets/x" of secret "a")");
    }
}

TEST_CASE("a target outside /run/secrets is at most 4091 bytes: the view holds it at file/<target>") {
    std::string longest;  // 17 components: 4091 bytes
    for (int i = 0; i < 16; ++i) longest += "/" + std::string(254, 'a');
    longest += "/" + std::string(10, 'b');
    REQUIRE(longest.size() == 4091);
    const ViewLayout layout = planned({ref("a", longest)});
    CHECK(layout.entries[0].file.size() == 4095);
    const auto r = planView({ref("a", longest + "c")});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "target \"" + longest + "c\" of secret \"a\" is too long for a file outside "
                               "/run/secrets (at most 4091 bytes)");
    // Under /run/secrets the parser's own limit is the only one.
    const std::string inSecrets = "/run/secrets" + longest.substr(0, 4095 - 12);
    CHECK(planned({ref("a", inSecrets)}).entries[0].file.size() == 4095 - 12 + 3);
}

TEST_CASE("a layout planned from a parsed annotation") {
    const auto refs = parseSecretRefs("db;source=db,target=/etc/db,uid=33,mode=0400;source=tls,target=certs/tls");
    REQUIRE(refs.has_value());
    const ViewLayout layout = planned(*refs);
    REQUIRE(layout.entries.size() == 3);
    CHECK(layout.entries[0].file == "dir/db");
    CHECK(layout.entries[1].file == "file/etc/db");
    CHECK(layout.entries[1].ref.uid == 33u);
    CHECK(layout.entries[1].ref.mode == 0400u);
    CHECK(layout.entries[2].file == "dir/certs/tls");
    CHECK(layout.directories == std::vector<std::string>{"file/etc", "dir/certs"});
    CHECK(layout.hasDirectoryMount());
}

TEST_CASE("an entry's path inside its area is what its mount shows, parents first") {
    const ViewLayout layout = planned({ref("a", "/run/secrets/x/y/a"), ref("b", "/etc/app/b"), ref("c", "/run/secrets/c")});
    REQUIRE(layout.entries.size() == 3);
    CHECK(pathInArea(layout.entries[0]) == "x/y/a");
    CHECK(parentsInArea(layout.entries[0]) == std::vector<std::string>{"x", "x/y"});
    CHECK(pathInArea(layout.entries[1]) == "etc/app/b");
    CHECK(parentsInArea(layout.entries[1]) == std::vector<std::string>{"etc", "etc/app"});
    CHECK(pathInArea(layout.entries[2]) == "c");
    CHECK(parentsInArea(layout.entries[2]).empty());
    // ViewEntry::file is the area, then that path.
    for (const auto& e : layout.entries)
        CHECK(e.file == std::string(e.inDirectory ? kViewDir : kViewFiles) + "/" + pathInArea(e));
}
