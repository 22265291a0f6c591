#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "plugin/config/agent_config.hpp"
#include "tests/support/temp_dir.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

using secretshim::test::TempDir;

namespace {

const std::string kName = "agent.yaml";

AgentConfig parseOk(const std::string& yaml) {
    auto config = parseAgentConfig(yaml, kName);
    if (!config) FAIL_CHECK("unexpected error: " << config.error().message);
    REQUIRE(config.has_value());
    return *config;
}

Error parseError(const std::string& yaml) {
    auto config = parseAgentConfig(yaml, kName);
    REQUIRE_FALSE(config.has_value());
    return config.error();
}

void checkDefaults(const AgentConfig& config) {
    CHECK(config.socket == "/run/secretshim/agent.sock");
    CHECK(config.socket == std::string(kDefaultSocket));
    CHECK(config.stateDir == "/var/lib/secretshim");
    CHECK(config.maxPayload == mountfs::kDefaultMaxPayload);
    CHECK(config.maxPayload == 500 * 1024);
    CHECK(config.source == "local");
}

const std::string kPayloadMessage = ": key \"max_payload\": expected bytes from 1 to 67108864";

}  // namespace

TEST_CASE("an empty or null document gives the defaults") {
    checkDefaults(AgentConfig{});
    SUBCASE("empty text") { checkDefaults(parseOk("")); }
    SUBCASE("only a comment") { checkDefaults(parseOk("# nothing here\n")); }
    SUBCASE("an explicit null") { checkDefaults(parseOk("~\n")); }
    SUBCASE("the word null") { checkDefaults(parseOk("null\n")); }
    SUBCASE("only blank lines") { checkDefaults(parseOk("\n\n\n")); }
}

TEST_CASE("socket is accepted and leaves the other keys at their defaults") {
    const auto config = parseOk("socket: /run/other/agent.sock\n");
    CHECK(config.socket == "/run/other/agent.sock");
    CHECK(config.stateDir == "/var/lib/secretshim");
    CHECK(config.maxPayload == mountfs::kDefaultMaxPayload);
    CHECK(config.source == "local");
}

TEST_CASE("state_dir is accepted") {
    const auto config = parseOk("state_dir: /srv/secretshim/state\n");
    CHECK(config.stateDir == "/srv/secretshim/state");
    CHECK(config.socket == "/run/secretshim/agent.sock");
}

TEST_CASE("runtime_dir is accepted; unset, it stays empty (the socket's directory)") {
    CHECK(parseOk("runtime_dir: /run/secretshim-b\n").runtimeDir == "/run/secretshim-b");
    CHECK(parseOk("state_dir: /var/lib/s\n").runtimeDir.empty());
    CHECK(parseError("runtime_dir: run/x\n").message == "agent.yaml:1: key \"runtime_dir\": expected an absolute path");
}

TEST_CASE("max_payload is accepted, up to the ceiling") {
    CHECK(parseOk("max_payload: 1\n").maxPayload == 1);
    CHECK(parseOk("max_payload: 4096\n").maxPayload == 4096);
    CHECK(parseOk("max_payload: 67108864\n").maxPayload == 64u * 1024 * 1024);
    CHECK(parseOk("max_payload: \"2048\"\n").maxPayload == 2048);
}

TEST_CASE("the limits on held plaintext: safe defaults, each settable within its range") {
    const auto defaults = parseOk("");
    CHECK(defaults.maxContainerBytes == 64u << 20);
    CHECK(defaults.maxContainerFiles == 1024);
    CHECK(defaults.maxNodeBytes == 256u << 20);
    const auto set = parseOk("max_container_bytes: 1048576\nmax_container_files: 10\nmax_node_bytes: 68719476736\n");
    CHECK(set.maxContainerBytes == 1048576);
    CHECK(set.maxContainerFiles == 10);
    CHECK(set.maxNodeBytes == std::size_t{64} << 30);
    CHECK(parseError("max_container_files: 1025\n").message ==
          "agent.yaml:1: key \"max_container_files\": expected files from 1 to 1024");
    CHECK(parseError("max_node_bytes: 0\n").message ==
          "agent.yaml:1: key \"max_node_bytes\": expected bytes from 1 to 68719476736");
    CHECK(parseError("max_container_bytes: -1\n").message ==
          "agent.yaml:1: key \"max_container_bytes\": expected bytes from 1 to 68719476736");
    CHECK(parseError("max_node_bytes: 68719476737\n").message ==
          "agent.yaml:1: key \"max_node_bytes\": expected bytes from 1 to 68719476736");
}

TEST_CASE("without tmpfs noswap the agent does not start unless the config allows swap") {
    CHECK_FALSE(parseOk("").allowSwap);
    CHECK(parseOk("allow_swap: true\n").allowSwap);
    CHECK(parseError("allow_swap: yes\n").message == "agent.yaml:1: key \"allow_swap\": expected true or false");
    CHECK(checkSwapPolicy(true, parseOk("")).has_value());
    CHECK(checkSwapPolicy(false, parseOk("allow_swap: true\n")).has_value());
    auto refused = checkSwapPolicy(false, parseOk(""));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message ==
          "this kernel's tmpfs cannot keep secrets out of swap (noswap needs Linux 6.4): use a newer kernel, or run "
          "without swap and set allow_swap: true");
}

TEST_CASE("log_target and log_level: auto and info by default, each value named, others refused") {
    CHECK(parseOk("").logTarget == LogTarget::automatic);
    CHECK(parseOk("").logLevel == LogLevel::info);
    CHECK(parseOk("log_target: auto\n").logTarget == LogTarget::automatic);
    CHECK(parseOk("log_target: journal\n").logTarget == LogTarget::journal);
    CHECK(parseOk("log_target: stderr\n").logTarget == LogTarget::standardError);
    CHECK(parseOk("log_level: err\n").logLevel == LogLevel::err);
    CHECK(parseOk("log_level: warning\n").logLevel == LogLevel::warning);
    CHECK(parseOk("log_level: notice\n").logLevel == LogLevel::notice);
    CHECK(parseOk("log_level: debug\n").logLevel == LogLevel::debug);
    CHECK(parseError("log_target: syslog\n").message ==
          "agent.yaml:1: key \"log_target\": expected \"auto\", \"journal\" or \"stderr\"");
    CHECK(parseError("log_target: [journal]\n").message ==
          "agent.yaml:1: key \"log_target\": expected \"auto\", \"journal\" or \"stderr\"");
    CHECK(parseError("socket: /s\nlog_level: error\n").message ==
          "agent.yaml:2: key \"log_level\": expected err, warning, notice, info or debug");
    CHECK(parseError("log_level: 3\n").message ==
          "agent.yaml:1: key \"log_level\": expected err, warning, notice, info or debug");
}

TEST_CASE("source local is accepted") {
    const auto config = parseOk("source: local\n");
    CHECK(config.source == "local");
}

TEST_CASE("every key together, with comments") {
    const auto config = parseOk(
        "# the agent\n"
        "socket: /run/s.sock   # where the hook connects\n"
        "state_dir: /var/lib/s\n"
        "max_payload: 1000\n"
        "source: local\n");
    CHECK(config.socket == "/run/s.sock");
    CHECK(config.stateDir == "/var/lib/s");
    CHECK(config.maxPayload == 1000);
    CHECK(config.source == "local");
}

TEST_CASE("an unknown key is refused with the file and its 1-based line") {
    const auto e = parseError(
        "socket: /run/s.sock\n"
        "state_dir: /var/lib/s\n"
        "colour: blue\n");
    CHECK(e.message == "agent.yaml:3: unknown key \"colour\"");
    CHECK(e.code == 0);
}

TEST_CASE("an unknown key on the first line is line 1") {
    CHECK(parseError("sockets: /run/s.sock\n").message == "agent.yaml:1: unknown key \"sockets\"");
}

TEST_CASE("the file name given is the one in errors") {
    auto config = parseAgentConfig("\nbogus: 1\n", "/etc/secretshim/agent.yaml");
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().message == "/etc/secretshim/agent.yaml:2: unknown key \"bogus\"");
}

TEST_CASE("a relative path is refused") {
    SUBCASE("socket") {
        CHECK(parseError("socket: run/agent.sock\n").message ==
              "agent.yaml:1: key \"socket\": expected an absolute path");
    }
    SUBCASE("state_dir on line 2") {
        CHECK(parseError("socket: /run/a.sock\nstate_dir: ./state\n").message ==
              "agent.yaml:2: key \"state_dir\": expected an absolute path");
    }
    SUBCASE("an empty string") {
        CHECK(parseError("state_dir: \"\"\n").message ==
              "agent.yaml:1: key \"state_dir\": expected an absolute path");
    }
}

TEST_CASE("a non-scalar value is refused") {
    SUBCASE("a sequence for socket") {
        CHECK(parseError("socket: [/a, /b]\n").message ==
              "agent.yaml:1: key \"socket\": expected an absolute path");
    }
    SUBCASE("a mapping for state_dir, on the following line") {
        CHECK(parseError("state_dir:\n  path: /var/lib/s\n").message ==
              "agent.yaml:2: key \"state_dir\": expected an absolute path");
    }
    SUBCASE("a sequence for max_payload") {
        CHECK(parseError("max_payload: [1]\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("a mapping for source") {
        CHECK(parseError("source: {kind: local}\n").message == "agent.yaml:1: key \"source\": expected \"local\" or \"etcd\"");
    }
}

TEST_CASE("a key with no value is refused") {
    const auto e = parseError("socket:\n");
    CHECK(e.message.rfind("agent.yaml:", 0) == 0);
    CHECK(e.message.ends_with(": key \"socket\": expected an absolute path"));
}

TEST_CASE("a key that is not a scalar is refused as unknown") {
    CHECK(parseError("? [socket]\n: /run/s.sock\n").message == "agent.yaml:1: unknown key \"\"");
}

TEST_CASE("max_payload out of range or not a number is refused") {
    SUBCASE("zero") { CHECK(parseError("max_payload: 0\n").message == "agent.yaml:1" + kPayloadMessage); }
    SUBCASE("not numeric") {
        CHECK(parseError("max_payload: lots\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("a unit suffix") {
        CHECK(parseError("max_payload: 10k\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("one above the ceiling") {
        CHECK(parseError("max_payload: 67108865\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("far too big to fit") {
        CHECK(parseError("max_payload: 99999999999999999999999\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("negative") {
        CHECK(parseError("max_payload: -1\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("empty") {
        CHECK(parseError("max_payload: \"\"\n").message == "agent.yaml:1" + kPayloadMessage);
    }
    SUBCASE("on line 2") {
        CHECK(parseError("source: local\nmax_payload: 0\n").message == "agent.yaml:2" + kPayloadMessage);
    }
}

TEST_CASE("a source other than local is refused") {
    CHECK(parseError("source: vault\n").message == "agent.yaml:1: key \"source\": expected \"local\" or \"etcd\"");
    CHECK(parseError("source: Local\n").message == "agent.yaml:1: key \"source\": expected \"local\" or \"etcd\"");
    CHECK(parseError("socket: /s\n\nsource: \"\"\n").message == "agent.yaml:3: key \"source\": expected \"local\" or \"etcd\"");
}

TEST_CASE("a document that is not a mapping is refused") {
    SUBCASE("a sequence") {
        CHECK(parseError("- socket\n- /run/s.sock\n").message == "agent.yaml:1: expected a mapping of keys");
    }
    SUBCASE("a scalar") { CHECK(parseError("just words\n").message == "agent.yaml:1: expected a mapping of keys"); }
    SUBCASE("a sequence after a comment line") {
        CHECK(parseError("# config\n[1, 2]\n").message == "agent.yaml:2: expected a mapping of keys");
    }
}

TEST_CASE("a YAML syntax error names the file and the line") {
    SUBCASE("an unclosed flow sequence on line 2") {
        const auto e = parseError("socket: /run/s.sock\nstate_dir: [/var/lib\n");
        CHECK(e.message.rfind("agent.yaml:", 0) == 0);
        CHECK(e.message.size() > std::string("agent.yaml:N: ").size());
        // name:LINE: with LINE a positive number.
        const auto second = e.message.find(':', kName.size() + 1);
        REQUIRE(second != std::string::npos);
        const std::string line = e.message.substr(kName.size() + 1, second - kName.size() - 1);
        REQUIRE_FALSE(line.empty());
        CHECK(line.find_first_not_of("0123456789") == std::string::npos);
        // yaml-cpp reports where it gave up looking for the ']': the end of input.
        CHECK(std::stoi(line) >= 2);
        CHECK(std::stoi(line) <= 3);
        CHECK(e.message.substr(second, 2) == ": ");
    }
    SUBCASE("bad indentation on line 3") {
        const auto e = parseError("socket: /run/s.sock\nstate_dir: /var/lib/s\n  max_payload: 1\n");
        CHECK(e.message.rfind("agent.yaml:3: ", 0) == 0);
    }
    SUBCASE("a stray flow end on line 1") {
        const auto e = parseError("socket: }\n");
        CHECK(e.message.rfind("agent.yaml:1: ", 0) == 0);
        CHECK(e.message.size() > std::string("agent.yaml:1: ").size());
    }
    SUBCASE("a nested mapping value on one line, line 2") {
        const auto e = parseError("source: local\nsocket: a: b\n");
        CHECK(e.message.rfind("agent.yaml:2: ", 0) == 0);
    }
}

TEST_CASE("loadAgentConfig on a missing file reports the path and errno") {
    TempDir dir;
    const std::string path = dir.path() + "/missing.yaml";
    auto config = loadAgentConfig(path);
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().message == "cannot read config " + path + ": No such file or directory");
    CHECK(config.error().code == ENOENT);
}

TEST_CASE("loadAgentConfig reads a real file and uses its path in errors") {
    TempDir dir;
    const std::string path = dir.path() + "/agent.yaml";
    SUBCASE("a valid file") {
        {
            std::ofstream out(path);
            out << "socket: /tmp/agent.sock\nstate_dir: /tmp/state\nmax_payload: 12345\nsource: local\n";
        }
        auto config = loadAgentConfig(path);
        REQUIRE(config.has_value());
        CHECK(config->socket == "/tmp/agent.sock");
        CHECK(config->stateDir == "/tmp/state");
        CHECK(config->maxPayload == 12345);
        CHECK(config->source == "local");
    }
    SUBCASE("an empty file gives the defaults") {
        { std::ofstream out(path); }
        auto config = loadAgentConfig(path);
        REQUIRE(config.has_value());
        checkDefaults(*config);
    }
    SUBCASE("a bad key is reported against the file's path") {
        {
            std::ofstream out(path);
            out << "socket: /tmp/agent.sock\n\nwhat: 1\n";
        }
        auto config = loadAgentConfig(path);
        REQUIRE_FALSE(config.has_value());
        CHECK(config.error().message == path + ":3: unknown key \"what\"");
    }
}

TEST_CASE("a duplicate key is refused with its line") {
    auto c = parseAgentConfig("max_payload: 10\nsocket: /a\nmax_payload: 20\n", "dup.yaml");
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error().message == "dup.yaml:3: duplicate key \"max_payload\"");
}

TEST_CASE("a directory given as the config file is refused") {
    auto c = loadAgentConfig("/tmp");
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error().message == "cannot read config /tmp: Is a directory");
}

TEST_CASE("source etcd with its etcd block") {
    const std::string yaml = "source: etcd\n"
                             "etcd:\n"
                             "  endpoints: [https://127.0.0.1:2379, https://127.0.0.1:2389]\n"
                             "  ca: /etc/secretshim/etcd/ca.crt\n"
                             "  cert: /etc/secretshim/etcd/node.crt\n"
                             "  key: /etc/secretshim/etcd/node.key\n"
                             "  node: node-1\n"
                             "  admin_keys: [/etc/secretshim/admin-1.pub, /etc/secretshim/admin-2.pub]\n"
                             "  signing_key: /root/admin.key\n";
    auto c = parseAgentConfig(yaml, kName);
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
    CHECK(c->source == "etcd");
    REQUIRE(c->etcd.endpoints.size() == 2);
    CHECK(c->etcd.endpoints[1] == "https://127.0.0.1:2389");
    CHECK(c->etcd.node == "node-1");
    CHECK(c->etcd.adminKeys == std::vector<std::string>{"/etc/secretshim/admin-1.pub", "/etc/secretshim/admin-2.pub"});
    CHECK(c->etcd.signingKey == "/root/admin.key");
    // A node that could not check signatures would act on whatever etcd holds.
    const std::string unsigned_ = yaml.substr(0, yaml.find("  admin_keys"));
    auto noKeys = parseAgentConfig(unsigned_, kName);
    REQUIRE_FALSE(noKeys.has_value());
    CHECK(noKeys.error().message == "agent.yaml:1: source \"etcd\" needs etcd.admin_keys: the admin public key(s) that "
                                    "sign the cluster's records (docs/cluster.md)");

    const std::pair<const char*, const char*> bad[] = {
        {"source: etcd\n", "needs an etcd block"},
        {"etcd:\n  endpoints: [http://x:1]\n  ca: /a\n  cert: /b\n  key: /c\n", "TLS only"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: relative\n  cert: /b\n  key: /c\n", "etcd.ca"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  cert: /b\n", "required"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  cert: /b\n  key: /c\n  user: u\n",
         "key \"etcd.user\" is not used: etcd takes the user from the client certificate's CN"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  cert: /b\n  key: /c\n  password_file: /p\n",
         "key \"etcd.password_file\" is not used"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  cert: /b\n  key: /c\n  colour: red\n", "unknown key"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  ca: /b\n  cert: /b\n  key: /c\n", "duplicate"},
        {"etcd: [1]\n", "mapping"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  cert: /b\n  key: /c\n  admin_keys: /k.pub\n", "list of 1 to 16"},
        {"etcd:\n  endpoints: [https://x:1]\n  ca: /a\n  cert: /b\n  key: /c\n  admin_keys: [k.pub]\n", "absolute path"},
    };
    for (const auto& [text, expect] : bad) {
        auto r = parseAgentConfig(text, kName);
        REQUIRE_FALSE(r.has_value());
        CHECK_MESSAGE(r.error().message.find(expect) != std::string::npos, r.error().message);
        CHECK(r.error().message.find('\n') == std::string::npos);
    }
}

TEST_CASE("a reload takes the limits live and keeps what needs a restart") {
    const AgentConfig running = parseOk("max_container_files: 4\nmax_node_bytes: 1000\n");
    SUBCASE("the same file changes nothing") {
        const auto r = reloadConfig(running, running);
        CHECK(r.changed.empty());
        CHECK(r.kept.empty());
        CHECK(r.config.maxContainerFiles == 4);
    }
    SUBCASE("the limits change") {
        const auto r = reloadConfig(running, parseOk("max_container_files: 9\nmax_container_bytes: 77\n"
                                                     "max_node_bytes: 1000\n"));
        CHECK(r.changed == std::vector<std::string>{"max_container_bytes", "max_container_files"});
        CHECK(r.kept.empty());
        CHECK(r.config.maxContainerFiles == 9);
        CHECK(r.config.maxContainerBytes == 77);
        CHECK(r.config.maxNodeBytes == 1000);
    }
    SUBCASE("the socket, the directories, the source and max_payload keep their running values") {
        const auto next = parseOk("max_container_files: 5\nmax_node_bytes: 1000\nsocket: /run/other.sock\n"
                                  "state_dir: /var/lib/other\nruntime_dir: /run/other\nmax_payload: 10\n"
                                  "allow_swap: true\nmetrics_listen: 127.0.0.1:9464\n");
        const auto r = reloadConfig(running, next);
        CHECK(r.changed == std::vector<std::string>{"max_container_files"});
        CHECK(r.kept ==
              std::vector<std::string>{"socket", "state_dir", "runtime_dir", "max_payload", "allow_swap",
                                       "metrics_listen"});
        CHECK_FALSE(r.config.metricsListen.has_value());
        CHECK(r.config.maxContainerFiles == 5);
        CHECK(r.config.socket == running.socket);
        CHECK(r.config.stateDir == running.stateDir);
        CHECK(r.config.runtimeDir == running.runtimeDir);
        CHECK(r.config.maxPayload == running.maxPayload);
        CHECK(r.config.allowSwap == running.allowSwap);
    }
    SUBCASE("log_level changes live, log_target is kept") {
        const auto r = reloadConfig(running, parseOk("max_container_files: 4\nmax_node_bytes: 1000\n"
                                                     "log_level: debug\nlog_target: journal\n"));
        CHECK(r.changed == std::vector<std::string>{"log_level"});
        CHECK(r.kept == std::vector<std::string>{"log_target"});
        CHECK(r.config.logLevel == LogLevel::debug);
        CHECK(r.config.logTarget == LogTarget::automatic);
    }
    SUBCASE("a changed etcd block is kept") {
        const std::string etcd = "source: etcd\netcd:\n  endpoints: [https://127.0.0.1:2379]\n  ca: /a/ca\n"
                                 "  cert: /a/c\n  key: /a/k\n  admin_keys: [/a/p]\n  node: ";
        const auto a = parseOk(etcd + "n1\n");
        const auto r = reloadConfig(a, parseOk(etcd + "n2\n"));
        CHECK(r.kept == std::vector<std::string>{"etcd"});
        CHECK(r.config.etcd.node == "n1");
        CHECK(reloadConfig(running, a).kept == std::vector<std::string>{"source", "etcd"});
    }
}

TEST_CASE("metrics_listen: off by default; an IPv4 or a bracketed IPv6 literal with a port, kept canonical") {
    CHECK_FALSE(parseOk("socket: /run/x.sock\n").metricsListen.has_value());
    auto v4 = parseOk("metrics_listen: 127.0.0.1:9464\n").metricsListen;
    REQUIRE(v4.has_value());
    CHECK(v4->host == "127.0.0.1");
    CHECK(v4->port == 9464);
    CHECK_FALSE(v4->ipv6);
    CHECK(v4->text() == "127.0.0.1:9464");
    auto v6 = parseOk("metrics_listen: \"[0:0::1]:65535\"\n").metricsListen;
    REQUIRE(v6.has_value());
    CHECK(v6->host == "::1");
    CHECK(v6->ipv6);
    CHECK(v6->text() == "[::1]:65535");
    // Two spellings of one address compare equal (a reload compares them).
    CHECK(*v6 == *parseOk("metrics_listen: \"[::1]:65535\"\n").metricsListen);
    CHECK_FALSE(*v4 == *parseOk("metrics_listen: 127.0.0.1:9465\n").metricsListen);
}

TEST_CASE("metrics_listen that does not parse is refused in one line with the file, line and key") {
    for (const char* bad : {"localhost:9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                            "127.0.0.1:94x4", "::1:9464", "[127.0.0.1]:9464", "[::1]", "1.2.3:80", ":9464",
                            "127.0.0.1:+80", "127.0.0.1:099999"}) {
        CAPTURE(bad);
        const Error e = parseError(std::string("socket: /run/x.sock\nmetrics_listen: \"") + bad + "\"\n");
        CHECK(e.message.find("agent.yaml:2: key \"metrics_listen\": expected HOST:PORT") == 0);
        CHECK(e.message.find('\n') == std::string::npos);
    }
    CHECK(parseError("metrics_listen: [127.0.0.1, 9464]\n").message.find("agent.yaml:1: key \"metrics_listen\"") == 0);
}

TEST_CASE("metrics_textfile: off by default; an absolute path to a .prom file") {
    CHECK(parseOk("socket: /run/x.sock\n").metricsTextfile.empty());
    CHECK(parseOk("metrics_textfile: /var/lib/prometheus/node-exporter/secretshim.prom\n").metricsTextfile ==
          "/var/lib/prometheus/node-exporter/secretshim.prom");
    for (const char* bad : {"/var/lib/x/secretshim.txt", "/var/lib/x/.prom", "/var/lib/x/", "/.prom"}) {
        CAPTURE(bad);
        CHECK(parseError(std::string("metrics_textfile: ") + bad + "\n").message ==
              "agent.yaml:1: key \"metrics_textfile\": expected a file name ending in .prom (node_exporter's textfile "
              "collector reads only those)");
    }
    CHECK(parseError("metrics_textfile: x.prom\n").message ==
          "agent.yaml:1: key \"metrics_textfile\": expected an absolute path");
}
