// The name a task's view is kept under in systemd's fd store: systemd drops
// a name longer than 255 characters or holding a control character, a
// non-ASCII byte or ':' (and with it the fd).
#include <doctest/doctest.h>

#include <string>

#include "plugin/agent/fd_store.hpp"

using namespace secretshim::plugin;

namespace {

std::string nameOf(const std::string& id) {
    TaskRecord r;
    r.id = id;
    return fdStoreName(r);
}

// systemd's own rule (fdname_is_valid, src/basic/fd-util.c).
bool validForSystemd(const std::string& name) {
    if (name.size() > 255) return false;
    for (const char c : name)
        if (static_cast<unsigned char>(c) < ' ' || static_cast<unsigned char>(c) >= 127 || c == ':') return false;
    return true;
}

}  // namespace

TEST_CASE("runtimes' container ids are their own fd store names") {
    const std::string hex(64, 'a');
    CHECK(nameOf(hex) == hex);
    CHECK(nameOf("c1") == "c1");
    CHECK(nameOf("web-1_x.y+z") == "web-1_x.y+z");
}

TEST_CASE("any other id becomes a name systemd keeps") {
    const std::string weird = std::string("a:b\nc\td\x7f") + "\xc3\xa9" + std::string(1, '\0') + "e";
    CHECK(nameOf(weird) == "a_b_c_d____e");
    CHECK(nameOf(std::string(300, 'x')) == std::string(255, 'x'));
    for (const std::string& id : {weird, std::string(300, 'x'), std::string("ok id with spaces")})
        CHECK(validForSystemd(nameOf(id)));
}
