#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/wrapper/runtime_args.hpp"

using secretshim::plugin::parseRuntimeCommand;

TEST_CASE("containerd's shim: global options, then create with --bundle") {
    const auto c = parseRuntimeCommand({"--root", "/run/containerd/runc/default", "--log", "/b/log.json",
                                        "--log-format", "json", "create", "--bundle", "/b", "--pid-file",
                                        "/b/init.pid", "ctr-1"});
    CHECK(c.command == "create");
    REQUIRE(c.bundle.has_value());
    CHECK(*c.bundle == "/b");
}

TEST_CASE("the short and = forms of --bundle") {
    CHECK(parseRuntimeCommand({"create", "-b", "/x", "id"}).bundle.value_or("") == "/x");
    CHECK(parseRuntimeCommand({"create", "--bundle=/y", "id"}).bundle.value_or("") == "/y");
    CHECK(parseRuntimeCommand({"create", "-b=/z", "id"}).bundle.value_or("") == "/z");
    CHECK(parseRuntimeCommand({"--root=/r", "--systemd-cgroup", "run", "--bundle", "/w", "id"}).bundle.value_or("") ==
          "/w");
}

TEST_CASE("no --bundle: none (the wrapper then uses its working directory)") {
    const auto c = parseRuntimeCommand({"--root", "/r", "create", "--pid-file", "-b", "id"});
    CHECK(c.command == "create");
    CHECK_FALSE(c.bundle.has_value());  // "-b" was --pid-file's value
}

TEST_CASE("a global option's value is not the command") {
    CHECK(parseRuntimeCommand({"--root", "create", "start", "id"}).command == "start");
    CHECK(parseRuntimeCommand({"--log-format", "json", "delete", "--force", "id"}).command == "delete");
}

TEST_CASE("other commands carry no bundle") {
    const auto c = parseRuntimeCommand({"--root", "/r", "state", "-b", "/x"});
    CHECK(c.command == "state");
    CHECK_FALSE(c.bundle.has_value());
}

TEST_CASE("no command at all") {
    CHECK(parseRuntimeCommand({}).command.empty());
    CHECK(parseRuntimeCommand({"--version"}).command.empty());
    CHECK(parseRuntimeCommand({"--root", "/r"}).command.empty());
}
