#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "platform/linux/mount_api.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/agent/task_records.hpp"
#include "tests/support/sha256_hex.hpp"
#include "tests/support/temp_dir.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using secretshim::platform::UniqueFd;

namespace fs = std::filesystem;

using secretshim::test::TempDir;

namespace {

TaskRecords openRecords(const std::string& state) {
    auto records = TaskRecords::open(state);
    if (!records) FAIL_CHECK("unexpected error: " << records.error().message);
    REQUIRE(records.has_value());
    return std::move(*records);
}

// A record's file is named by the SHA-256 of the container id (and, when
// the record has a bundle, a NUL byte and the bundle).
std::string hexOf(const std::string& text) { return secretshim::test::sha256Hex(text); }

std::vector<std::string> entriesOf(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void writeText(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    REQUIRE(out.good());
}

std::string readText(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Field 22 of /proc/<pid>/stat, parsed here independently of the library.
unsigned long long startTimeFromProc(pid_t pid) {
    const std::string text = readText("/proc/" + std::to_string(pid) + "/stat");
    const auto close = text.rfind(')');
    REQUIRE(close != std::string::npos);
    std::istringstream rest(text.substr(close + 1));
    std::vector<std::string> fields((std::istream_iterator<std::string>(rest)), std::istream_iterator<std::string>());
    REQUIRE(fields.size() >= 20);
    return std::stoull(fields[19]);  // fields[0] is field 3 (state)
}

// A forked child that waits until its pipe closes, then exits.
class Child {
public:
    Child() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(fds[1]);
            char c;
            while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
            }
            ::_exit(0);
        }
        ::close(fds[0]);
        release_ = UniqueFd(fds[1]);
    }
    ~Child() { reap(); }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    pid_t pid() const { return pid_; }
    // Lets the child exit and waits for it; returns its exit status.
    int reap() {
        if (reaped_) return status_;
        release_.reset();
        while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
        }
        reaped_ = true;
        return status_;
    }

private:
    pid_t pid_ = -1;
    UniqueFd release_;
    int status_ = 0;
    bool reaped_ = false;
};

// The pid of a child that has exited and been reaped.
pid_t reapedPid() {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return pid;
}

}  // namespace

TEST_CASE("open creates the tasks directory with mode 0700") {
    TempDir tmp;
    REQUIRE_FALSE(fs::exists((tmp.path() + "/tasks")));
    auto records = openRecords(tmp.path());
    struct stat st {};
    REQUIRE(::lstat((tmp.path() + "/tasks").c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK((st.st_mode & 07777) == 0700);
    CHECK(st.st_uid == ::geteuid());

    std::vector<std::string> problems;
    CHECK(records.loadAll(problems).empty());
    CHECK(problems.empty());
}

TEST_CASE("open reuses an existing private tasks directory and its records") {
    TempDir tmp;
    {
        auto records = openRecords(tmp.path());
        REQUIRE(records.save({"kept", 42, 99, "a:/run/a"}).has_value());
    }
    auto again = openRecords(tmp.path());
    std::vector<std::string> problems;
    const auto all = again.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "kept");
}

TEST_CASE("open creates a missing runtime directory (0700), not its parents") {
    TempDir tmp;
    const std::string runtime = tmp.path() + "/run";
    auto records = openRecords(runtime);
    struct stat st {};
    REQUIRE(::lstat(runtime.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    CHECK(fs::is_directory(runtime + "/tasks"));

    const std::string deep = tmp.path() + "/nope/run";
    auto refused = TaskRecords::open(deep);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message == "creating runtime directory " + deep + ": No such file or directory");
    CHECK(refused.error().code == ENOENT);
    CHECK_FALSE(fs::exists(tmp.path() + "/nope"));
}

// Upgrading from an agent that kept records in <state>/tasks: the running
// tasks it left must be re-adopted, and their records live on in the
// runtime directory.
TEST_CASE("open refuses a tasks directory others can read") {
    TempDir tmp;
    REQUIRE(::mkdir((tmp.path() + "/tasks").c_str(), 0700) == 0);
    REQUIRE(::chmod((tmp.path() + "/tasks").c_str(), 0755) == 0);
    auto records = TaskRecords::open(tmp.path());
    REQUIRE_FALSE(records.has_value());
    CHECK(records.error().code == EPERM);
    CHECK(records.error().message.find((tmp.path() + "/tasks")) != std::string::npos);
    CHECK(records.error().message.find("accessible by group or others") != std::string::npos);
}

TEST_CASE("open refuses a tasks path that is a symlink") {
    TempDir tmp;
    const std::string elsewhere = tmp.path() + "/elsewhere";
    REQUIRE(::mkdir(elsewhere.c_str(), 0700) == 0);
    REQUIRE(::symlink(elsewhere.c_str(), (tmp.path() + "/tasks").c_str()) == 0);
    auto records = TaskRecords::open(tmp.path());
    REQUIRE_FALSE(records.has_value());
    CHECK(records.error().code == ELOOP);
}

TEST_CASE("a saved record loads back, under a file named by the id's SHA-256") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    // A slash, a space, a dot-dot and UTF-8: none may shape the path.
    const std::string id = "a/b c/../\xc3\xa9t\xc3\xa9-\xe2\x9c\x93";
    const TaskRecord saved{id, 4321, 1234567890123ULL, "db:/run/secrets/db,api:/run/secrets/api"};
    auto ok = records.save(saved);
    if (!ok) FAIL_CHECK(ok.error().message);
    REQUIRE(ok.has_value());

    const auto names = entriesOf((tmp.path() + "/tasks"));
    REQUIRE(names.size() == 1);
    CHECK(names[0] == hexOf(id) + ".task");
    REQUIRE(names[0].ends_with(".task"));
    const std::string stem = names[0].substr(0, names[0].size() - 5);
    CHECK(stem.size() == 64);
    CHECK(stem.find_first_not_of("0123456789abcdef") == std::string::npos);
    struct stat st {};
    REQUIRE(::lstat(((tmp.path() + "/tasks") + "/" + names[0]).c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    // Nothing was written outside the tasks directory.
    CHECK(entriesOf(tmp.path()) == std::vector<std::string>{"tasks"});

    std::vector<std::string> problems;
    const auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == id);
    CHECK(all[0].pid == 4321);
    CHECK(all[0].startTime == 1234567890123ULL);
    CHECK(all[0].secrets == saved.secrets);
}

TEST_CASE("several records load back, one each") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save({"one", 1, 10, "a:/a"}).has_value());
    REQUIRE(records.save({"two", 2, 20, ""}).has_value());
    REQUIRE(records.save({"three", 3, 0, "c:/c"}).has_value());
    CHECK(entriesOf((tmp.path() + "/tasks")).size() == 3);

    std::vector<std::string> problems;
    auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 3);
    std::sort(all.begin(), all.end(), [](const TaskRecord& a, const TaskRecord& b) { return a.pid < b.pid; });
    CHECK(all[0].id == "one");
    CHECK(all[0].startTime == 10);
    CHECK(all[1].id == "two");
    CHECK(all[1].secrets.empty());
    CHECK(all[2].id == "three");
    CHECK(all[2].startTime == 0);
    CHECK(all[2].secrets == "c:/c");
}

TEST_CASE("saving the same id again replaces the record") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save({"ctr", 100, 5000, "old:/run/old"}).has_value());
    REQUIRE(records.save({"ctr", 200, 6000, "new:/run/new"}).has_value());

    const auto names = entriesOf((tmp.path() + "/tasks"));
    REQUIRE(names.size() == 1);
    CHECK(names[0] == hexOf("ctr") + ".task");

    std::vector<std::string> problems;
    const auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "ctr");
    CHECK(all[0].pid == 200);
    CHECK(all[0].startTime == 6000);
    CHECK(all[0].secrets == "new:/run/new");
}

TEST_CASE("remove deletes a record and leaves the others") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save({"keep", 1, 1, ""}).has_value());
    REQUIRE(records.save({"drop/me", 2, 2, ""}).has_value());
    records.remove({"drop/me", ""});
    CHECK(entriesOf((tmp.path() + "/tasks")) == std::vector<std::string>{hexOf("keep") + ".task"});

    std::vector<std::string> problems;
    auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "keep");

    // Removing what is not there is harmless.
    records.remove({"drop/me", ""});
    records.remove({"never-saved", ""});
    all = records.loadAll(problems);
    CHECK(problems.empty());
    CHECK(all.size() == 1);

    records.remove({"keep", ""});
    CHECK(entriesOf((tmp.path() + "/tasks")).empty());
    CHECK(records.loadAll(problems).empty());
}

TEST_CASE("a malformed record is reported and removed") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save({"good", 7, 70, "s:/s"}).has_value());

    std::string bad;
    std::string content;
    SUBCASE("not JSON") {
        bad = "deadbeef.task";
        content = "not json at all";
    }
    SUBCASE("empty") {
        bad = "00.task";
        content = "";
    }
    SUBCASE("a JSON array") {
        bad = "01.task";
        content = "[1,2,3]";
    }
    SUBCASE("a missing field") {
        bad = "02.task";
        content = R"({"id":"x","pid":1,"secrets":""})";
    }
    SUBCASE("a pid of the wrong type") {
        bad = "03.task";
        content = R"({"id":"x","pid":"1","start_time":1,"secrets":""})";
    }
    SUBCASE("a negative start time") {
        bad = "04.task";
        content = R"({"id":"x","pid":1,"start_time":-1,"secrets":""})";
    }
    SUBCASE("secrets not a string") {
        bad = "05.task";
        content = R"({"id":"x","pid":1,"start_time":1,"secrets":[]})";
    }
    SUBCASE("an id not a string") {
        bad = "06.task";
        content = R"({"id":6,"pid":1,"start_time":1,"secrets":""})";
    }
    const std::string badPath = (tmp.path() + "/tasks") + "/" + bad;
    writeText(badPath, content);
    REQUIRE(fs::exists(badPath));

    std::vector<std::string> problems;
    const auto all = records.loadAll(problems);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "unreadable task record " + badPath + ": removed");
    CHECK_FALSE(fs::exists(badPath));
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "good");
    CHECK(all[0].pid == 7);

    // Reported once: the next load finds nothing wrong.
    std::vector<std::string> again;
    CHECK(records.loadAll(again).size() == 1);
    CHECK(again.empty());
}

TEST_CASE("files without the .task suffix are ignored and kept") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    writeText((tmp.path() + "/tasks") + "/notes.txt", "garbage");
    writeText((tmp.path() + "/tasks") + "/.task", "garbage");
    std::vector<std::string> problems;
    CHECK(records.loadAll(problems).empty());
    CHECK(problems.empty());
    CHECK(fs::exists((tmp.path() + "/tasks") + "/notes.txt"));
    CHECK(fs::exists((tmp.path() + "/tasks") + "/.task"));
}

TEST_CASE("processStartTime of this process matches /proc and is stable") {
    const auto first = processStartTime(::getpid());
    if (!first) FAIL_CHECK(first.error().message);
    REQUIRE(first.has_value());
    CHECK(*first > 0);
    CHECK(*first == startTimeFromProc(::getpid()));
    const auto second = processStartTime(::getpid());
    REQUIRE(second.has_value());
    CHECK(*second == *first);
}

TEST_CASE("processStartTime of a child is no earlier than its parent's") {
    Child child;
    const auto parent = processStartTime(::getpid());
    const auto mine = processStartTime(child.pid());
    REQUIRE(parent.has_value());
    REQUIRE(mine.has_value());
    CHECK(*mine >= *parent);
    CHECK(*mine == startTimeFromProc(child.pid()));
    CHECK(WIFEXITED(child.reap()));
}

TEST_CASE("processStartTime fails for a process that does not exist") {
    const pid_t gone = reapedPid();
    const auto start = processStartTime(gone);
    REQUIRE_FALSE(start.has_value());
    CHECK(start.error().message == "no process " + std::to_string(gone));

    const auto negative = processStartTime(-1);
    CHECK_FALSE(negative.has_value());
}

TEST_CASE("pidOfPidfd gives a live child's pid, then an error once it is reaped") {
    Child child;
    UniqueFd pidfd(platform::sysPidfdOpen(child.pid(), 0));
    REQUIRE(pidfd.valid());

    const auto live = pidOfPidfd(pidfd.get());
    if (!live) FAIL_CHECK(live.error().message);
    REQUIRE(live.has_value());
    CHECK(*live == child.pid());

    const int status = child.reap();
    CHECK(WIFEXITED(status));
    const auto dead = pidOfPidfd(pidfd.get());
    REQUIRE_FALSE(dead.has_value());
    CHECK(dead.error().message == "the container's init has exited");
}

TEST_CASE("pidOfPidfd of this process's own pidfd") {
    UniqueFd pidfd(platform::sysPidfdOpen(::getpid(), 0));
    REQUIRE(pidfd.valid());
    const auto pid = pidOfPidfd(pidfd.get());
    REQUIRE(pid.has_value());
    CHECK(*pid == ::getpid());
}

TEST_CASE("pidOfPidfd refuses a file descriptor that is not a pidfd") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    UniqueFd readEnd(fds[0]);
    UniqueFd writeEnd(fds[1]);

    const auto pipe = pidOfPidfd(readEnd.get());
    REQUIRE_FALSE(pipe.has_value());
    CHECK(pipe.error().message == "not a pidfd");

    UniqueFd file(::open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
    REQUIRE(file.valid());
    const auto regular = pidOfPidfd(file.get());
    REQUIRE_FALSE(regular.has_value());
    CHECK(regular.error().message == "not a pidfd");

    const int closed = readEnd.get();
    readEnd.reset();
    const auto none = pidOfPidfd(closed);
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().message == "not a pidfd");

    CHECK_FALSE(pidOfPidfd(-1).has_value());
}

TEST_CASE("a container id of any length is saved and loaded back") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    const std::string id(300, 'k');  // longer than a file name may be
    const TaskRecord saved{id, 77, 42ULL, "db"};
    REQUIRE(records.save(saved).has_value());
    std::vector<std::string> problems;
    const auto loaded = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].id == id);
    records.remove({id, ""});
    CHECK(entriesOf((tmp.path() + "/tasks")).empty());
}

TEST_CASE("a record under another id's file name is refused") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save({"one", 1, 1ULL, "a"}).has_value());
    // Rename one's record to the name two's record would have.
    REQUIRE(::rename(((tmp.path() + "/tasks") + "/" + hexOf("one") + ".task").c_str(),
                     ((tmp.path() + "/tasks") + "/" + hexOf("two") + ".task").c_str()) == 0);
    std::vector<std::string> problems;
    CHECK(records.loadAll(problems).empty());
    CHECK(problems.size() == 1);
}

TEST_CASE("who the container is survives in its record; a record without one still loads") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    TaskRecord kube{"k", 11, 110, "db", "t1"};
    WorkloadIdentity who;
    who.kind = WorkloadIdentity::Kind::kubernetes;
    who.integration = Integration::containerdCri;
    who.ns = "tenant-a";
    who.pod = "web";
    who.podUid = "uid-1";
    who.container = "app";
    kube.identity = who;
    REQUIRE(records.save(kube).has_value());
    REQUIRE(records.save({"old", 12, 120, "db"}).has_value());  // written before grants: no identity

    std::vector<std::string> problems;
    auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 2);
    const auto& k = all[0].id == "k" ? all[0] : all[1];
    const auto& old = all[0].id == "k" ? all[1] : all[0];
    REQUIRE(k.identity.has_value());
    CHECK(*k.identity == who);
    CHECK(k.task == "t1");
    CHECK_FALSE(old.identity.has_value());

    // A malformed identity: the record loads, the identity is dropped and said.
    std::ofstream((tmp.path() + "/tasks") + "/" + hexOf("m") + ".task")
        << R"({"id":"m","pid":1,"start_time":1,"secrets":"db","identity":{"integration":"nope"}})";
    ::chmod(((tmp.path() + "/tasks") + "/" + hexOf("m") + ".task").c_str(), 0600);
    problems.clear();
    all = records.loadAll(problems);
    CHECK(all.size() == 3);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].find("the identity's integration is missing or unknown: every revocation of what it holds removes it") !=
          std::string::npos);
}

namespace {

constexpr const char* kNs1 = "/run/containerd/io.containerd.runtime.v2.task/ns1/web";
constexpr const char* kNs2 = "/run/containerd/io.containerd.runtime.v2.task/ns2/web";

TaskRecord withBundle(TaskRecord r, const std::string& bundle) {
    r.bundle = bundle;
    return r;
}

}  // namespace

TEST_CASE("the same id in two namespaces: two records, each loaded and removed on its own") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save(withBundle({"web", 1, 10, "a"}, kNs1)).has_value());
    REQUIRE(records.save(withBundle({"web", 2, 20, "b"}, kNs2)).has_value());
    CHECK(entriesOf((tmp.path() + "/tasks")) ==
          [] {
              std::vector<std::string> names{hexOf(std::string("web") + '\0' + kNs1) + ".task",
                                             hexOf(std::string("web") + '\0' + kNs2) + ".task"};
              std::sort(names.begin(), names.end());
              return names;
          }());

    std::vector<std::string> problems;
    auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 2);
    std::sort(all.begin(), all.end(), [](const TaskRecord& a, const TaskRecord& b) { return a.pid < b.pid; });
    CHECK(all[0].key() == TaskKey{"web", kNs1});
    CHECK(all[0].secrets == "a");
    CHECK(all[1].key() == TaskKey{"web", kNs2});
    CHECK(all[1].secrets == "b");

    // Removing one leaves the other, whatever the order.
    records.remove({"web", kNs2});
    all = records.loadAll(problems);
    REQUIRE(all.size() == 1);
    CHECK(all[0].key() == TaskKey{"web", kNs1});
    records.remove({"web", ""});  // no such key: the record with a bundle stays
    CHECK(records.loadAll(problems).size() == 1);
    records.remove({"web", kNs1});
    CHECK(entriesOf((tmp.path() + "/tasks")).empty());
}

TEST_CASE("a record from before bundles loads with none, under its old name, and is removed by its key") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    // As the agent wrote it before bundles: named by the id's SHA-256, no "bundle".
    const std::string old = (tmp.path() + "/tasks") + "/" + hexOf("web") + ".task";
    writeText(old, R"({"id":"web","pid":5,"start_time":50,"secrets":"db","view_device":7,"locked":false})");
    REQUIRE(::chmod(old.c_str(), 0600) == 0);
    // The same id, started since by a hook that sends bundles.
    REQUIRE(records.save(withBundle({"web", 6, 60, "api"}, kNs2)).has_value());

    std::vector<std::string> problems;
    auto all = records.loadAll(problems);
    CHECK(problems.empty());
    REQUIRE(all.size() == 2);
    std::sort(all.begin(), all.end(), [](const TaskRecord& a, const TaskRecord& b) { return a.pid < b.pid; });
    CHECK(all[0].key() == TaskKey{"web", ""});
    CHECK(all[0].storeName() == hexOf("web"));
    CHECK(all[0].viewDevice == 7);
    CHECK_FALSE(all[0].locked);
    CHECK(all[1].key() == TaskKey{"web", kNs2});

    // Saved again (a live update), it keeps its name and gains no bundle.
    REQUIRE(records.save(all[0]).has_value());
    CHECK(readText(old).find("bundle") == std::string::npos);
    records.remove(all[0].key());
    CHECK_FALSE(fs::exists(old));
    CHECK(records.loadAll(problems).size() == 1);
}

TEST_CASE("a record whose bundle does not match its file name, or is not a string, is refused") {
    TempDir tmp;
    auto records = openRecords(tmp.path());
    REQUIRE(records.save(withBundle({"web", 1, 10, "a"}, kNs1)).has_value());
    const std::string path = (tmp.path() + "/tasks") + "/" + TaskKey{"web", kNs1}.storeName() + ".task";
    std::string text = readText(path);
    REQUIRE(text.find(kNs1) != std::string::npos);
    SUBCASE("another bundle") { text.replace(text.find(kNs1), std::string(kNs1).size(), kNs2); }
    SUBCASE("no bundle") { text = R"({"id":"web","pid":1,"start_time":10,"secrets":"a"})"; }
    SUBCASE("a bundle that is not a string") { text = R"({"id":"web","pid":1,"start_time":10,"secrets":"a","bundle":7})"; }
    writeText(path, text);
    std::vector<std::string> problems;
    CHECK(records.loadAll(problems).empty());
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "unreadable task record " + path + ": removed");
    CHECK_FALSE(fs::exists(path));
}
