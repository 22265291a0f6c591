#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/agent/journal_log.hpp"
#include "plugin/agent/log.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

std::string streamOf(int fd) {
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

bool has(const std::vector<std::string>& fields, const std::string& field) {
    return std::find(fields.begin(), fields.end(), field) != fields.end();
}

std::size_t countPrefix(const std::vector<std::string>& fields, const std::string& prefix) {
    return static_cast<std::size_t>(
        std::count_if(fields.begin(), fields.end(), [&](const auto& f) { return f.rfind(prefix, 0) == 0; }));
}

// What log() writes to stderr while `fn` runs (fd 2 points at a file).
template <class Fn>
std::string stderrOf(Fn fn) {
    char path[] = "/tmp/journal-log-test-XXXXXX";
    const int file = ::mkstemp(path);
    REQUIRE(file >= 0);
    ::unlink(path);
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(file, STDERR_FILENO);
    fn();
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string out(4096, '\0');
    const ssize_t n = ::pread(file, out.data(), out.size(), 0);
    ::close(file);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

}  // namespace

TEST_CASE("JOURNAL_STREAM counts only when it names this very stream") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const std::string mine = streamOf(fds[1]);
    CHECK(isJournalStream(fds[1], mine.c_str()));
    CHECK_FALSE(isJournalStream(fds[1], nullptr));
    CHECK_FALSE(isJournalStream(fds[1], ""));
    CHECK_FALSE(isJournalStream(fds[1], (mine + "x").c_str()));
    CHECK_FALSE(isJournalStream(fds[1], "1:1"));
    // Inherited by a child whose stderr is another file: not its journal.
    int other[2];
    REQUIRE(::pipe(other) == 0);
    CHECK_FALSE(isJournalStream(other[1], mine.c_str()));
    CHECK_FALSE(isJournalStream(-1, mine.c_str()));
    for (int fd : {fds[0], fds[1], other[0], other[1]}) ::close(fd);
}

TEST_CASE("an attach's journal entry: the line as MESSAGE, its priority, the identity as a grant rule") {
    WorkloadIdentity pod;
    pod.kind = WorkloadIdentity::Kind::kubernetes;
    pod.integration = Integration::containerdCri;
    pod.ns = "tenant-a";
    pod.pod = "web";
    pod.podUid = "0b7e-11";
    pod.container = "app";
    pod.image = "registry.example/app:1";
    const auto fields = journalFields("secretshimd", "container \"c1\": attached secrets db,api (noswap)",
                                      {.event = audit::attach, .containers = {"c1"}, .secrets = "db,api",
                                       .identity = &pod, .task = "web-1"});
    CHECK(fields == std::vector<std::string>{
                        "MESSAGE=container \"c1\": attached secrets db,api (noswap)",
                        "PRIORITY=6",
                        "SYSLOG_IDENTIFIER=secretshimd",
                        "SECRETSHIM_EVENT=attach",
                        "CONTAINER_ID=c1",
                        "SECRETSHIM_SECRETS=db,api",
                        "SECRETSHIM_IDENTITY=kubernetes,namespace=tenant-a,pod=web,container=app",
                        "SECRETSHIM_INTEGRATION=containerd-cri",
                        "SECRETSHIM_POD_NAMESPACE=tenant-a",
                        "SECRETSHIM_POD_UID=0b7e-11",
                        "SECRETSHIM_TASK=web-1",
                    });
}

TEST_CASE("a refusal's entry: warning, its reason; root and Podman identities; repeated and empty container ids") {
    WorkloadIdentity root;
    const auto refused = journalFields("secretshimd", "container \"\": refused: malformed",
                                       {.level = LogLevel::warning, .event = audit::refuse, .containers = {""},
                                        .identity = &root, .reason = "bad_request"});
    CHECK(has(refused, "PRIORITY=4"));
    CHECK(has(refused, "SECRETSHIM_REASON=bad_request"));
    CHECK(has(refused, "SECRETSHIM_IDENTITY=root"));
    CHECK(has(refused, "SECRETSHIM_INTEGRATION=bundle"));
    CHECK(countPrefix(refused, "CONTAINER_ID=") == 0);
    CHECK(countPrefix(refused, "SECRETSHIM_POD_") == 0);
    CHECK(countPrefix(refused, "SECRETSHIM_TASK=") == 0);

    WorkloadIdentity podman;
    podman.kind = WorkloadIdentity::Kind::podman;
    podman.integration = Integration::podman;
    podman.name = "web-1";
    const auto updated = journalFields("secretshimd", "secret db updated in 2 containers",
                                       {.event = audit::update, .containers = {"a", "b"}, .identity = &podman});
    CHECK(has(updated, "CONTAINER_ID=a"));
    CHECK(has(updated, "CONTAINER_ID=b"));
    CHECK(has(updated, "SECRETSHIM_IDENTITY=podman,name=web-1"));

    const auto plain = journalFields("secretshimd", "etcd: connected", {});
    CHECK(plain == std::vector<std::string>{"MESSAGE=etcd: connected", "PRIORITY=6", "SYSLOG_IDENTIFIER=secretshimd"});
}

TEST_CASE("on stderr: the line as before, below the log level dropped, the level changeable at any time") {
    REQUIRE(setLogTarget(LogTarget::standardError));
    setLogLevel(LogLevel::info);
    CHECK(stderrOf([] {
              log("container \"c1\": attached secrets db (noswap)", {.event = audit::attach, .containers = {"c1"}});
              log("a trace", {.level = LogLevel::debug});
          }) == "secretshimd: container \"c1\": attached secrets db (noswap)\n");
    setLogLevel(LogLevel::warning);
    CHECK(logLevel() == LogLevel::warning);
    CHECK(stderrOf([] {
              log("attached");
              log("refused", {.level = LogLevel::warning});
              log("failed", {.level = LogLevel::err});
          }) == "secretshimd: refused\nsecretshimd: failed\n");
    setLogLevel(LogLevel::debug);
    CHECK(stderrOf([] { log("a trace", {.level = LogLevel::debug}); }) == "secretshimd: a trace\n");
    setLogLevel(LogLevel::info);
}

TEST_CASE("log_target auto: stderr unless JOURNAL_STREAM names stderr") {
    ::unsetenv("JOURNAL_STREAM");
    REQUIRE(setLogTarget(LogTarget::automatic));
    CHECK(stderrOf([] { log("plain"); }) == "secretshimd: plain\n");
    // Named, but another stream (stderr is a file here): still stderr.
    ::setenv("JOURNAL_STREAM", "1:1", 1);
    REQUIRE(setLogTarget(LogTarget::automatic));
    CHECK(stderrOf([] { log("still plain"); }) == "secretshimd: still plain\n");
    ::unsetenv("JOURNAL_STREAM");
    REQUIRE(setLogTarget(LogTarget::standardError));
}

TEST_CASE("log_target journal with no journal to write to: the line still reaches stderr") {
    // Only where no journald listens (this machine, CI): elsewhere the
    // entry would go to the real journal. journal_e2e covers a real one.
    if (::access("/run/systemd/journal/socket", F_OK) == 0) {
        MESSAGE("a journald listens here: not checked");
        return;
    }
    REQUIRE(setLogTarget(LogTarget::journal));
    CHECK(stderrOf([] { log("no journal", {.level = LogLevel::warning}); }) == "secretshimd: no journal\n");
    REQUIRE(setLogTarget(LogTarget::standardError));
}
