// End to end under wine: the real secretshimd (over StandInLinkFs, since
// wine creates no symbolic links), secretshim-hook.exe and secretshimctl.exe
// as separate processes talking over a real named pipe, on real files in a
// temporary container root. Secret values are random markers, compared in
// code and never printed.
#include <doctest/doctest.h>

#include <windows.h>
#include <bcrypt.h>
#include <sddl.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "plugin/windows/pipe_channel.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/windows/pipe_server_check.hpp"
#include "tests/windows/run_program.hpp"
#include "tests/windows/stand_in_link_fs.hpp"
#include "tests/windows/test_support.hpp"

using namespace secretshim;
using namespace secretshim::testing;

namespace {

int countEntries(const std::wstring& dir) {
    WIN32_FIND_DATAW data{};
    HANDLE find = ::FindFirstFileW((dir + L"\\*").c_str(), &data);
    if (find == INVALID_HANDLE_VALUE) return -1;
    int n = 0;
    do {
        const std::wstring name = data.cFileName;
        if (name != L"." && name != L"..") ++n;
    } while (::FindNextFileW(find, &data));
    ::FindClose(find);
    return n;
}

std::string readText(const std::wstring& path) {
    const auto bytes = readFile(path);
    return std::string(bytes.begin(), bytes.end());
}

// The agent under test, on its own pipe and state directory, its log in a file.
class Agent {
public:
    Agent(std::wstring pipe, std::wstring stateDir, std::wstring logPath,
          const char* exeVariable = "SECRETSHIM_TEST_AGENT_EXE")
        : pipe_(std::move(pipe)), state_(std::move(stateDir)), log_(std::move(logPath)), exeVariable_(exeVariable) {}
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;
    ~Agent() { kill(); }

    // The second agent on a pipe is expected to exit: returns its exit code
    // if it did within a few seconds, else keeps it running and returns -1.
    int start() {
        SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, TRUE};
        HANDLE logFile = ::CreateFileW(log_.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                                       OPEN_ALWAYS, 0, nullptr);
        REQUIRE(logFile != INVALID_HANDLE_VALUE);
        STARTUPINFOW si{};
        si.cb = sizeof si;
        si.dwFlags = STARTF_USESTDHANDLES;
        si.hStdInput = nullptr;
        si.hStdOutput = logFile;
        si.hStdError = logFile;
        const std::wstring exe = exeFromEnv(exeVariable_);
        std::wstring line = commandLine(exe, {L"--pipe", pipe_, L"--state-dir", state_.substr(4)});
        PROCESS_INFORMATION pi{};
        REQUIRE(::CreateProcessW(exe.c_str(), line.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si, &pi));
        ::CloseHandle(logFile);
        ::CloseHandle(pi.hThread);
        process_ = pi.hProcess;
        if (::WaitForSingleObject(process_, 1500) == WAIT_OBJECT_0) {
            DWORD code = 0;
            ::GetExitCodeProcess(process_, &code);
            ::CloseHandle(process_);
            process_ = nullptr;
            return static_cast<int>(code);
        }
        return -1;
    }
    // A crash: no chance to clean anything up.
    void kill() {
        if (process_ == nullptr) return;
        ::TerminateProcess(process_, 137);
        ::WaitForSingleObject(process_, 10000);
        ::CloseHandle(process_);
        process_ = nullptr;
    }
    std::string log() const { return readText(log_); }

private:
    std::wstring pipe_, state_, log_;
    const char* exeVariable_;
    HANDLE process_ = nullptr;
};

struct Node {
    TempDir work{L"e2e-node"};
    std::wstring pipe = L"secretshim-e2e-" + std::to_wstring(::GetCurrentProcessId());
    std::wstring state = work.path() + L"\\state";
    std::wstring root = work.path() + L"\\root";
    std::string rootPlain = narrow(root.substr(4));
    Agent agent{pipe, state, work.path() + L"\\agent.log"};
    std::wstring hook = exeFromEnv("SECRETSHIM_HOOK_EXE");
    std::wstring ctl = exeFromEnv("SECRETSHIM_CTL_EXE");

    Node() { ::CreateDirectoryW(root.c_str(), nullptr); }

    RunResult hookRun(const std::vector<std::wstring>& args) {
        std::vector<std::wstring> all{L"--pipe", pipe, L"--timeout", L"20"};
        all.insert(all.end(), args.begin(), args.end());
        return run(hook, all);
    }
    RunResult prepare(const std::wstring& task, const std::vector<std::wstring>& specs) {
        std::vector<std::wstring> args{L"prepare", L"--root", widen(rootPlain), L"--task", task};
        for (const auto& s : specs) args.insert(args.end(), {L"--secret", s});
        return hookRun(args);
    }
    RunResult cleanup(const std::wstring& task) {
        return hookRun({L"cleanup", L"--root", widen(rootPlain), L"--task", task});
    }
    RunResult ctlRun(const std::vector<std::wstring>& args, const std::string& input = {}) {
        std::vector<std::wstring> all{L"--pipe", pipe};
        all.insert(all.end(), args.begin(), args.end());
        return run(ctl, all, input);
    }
    std::wstring internal() const { return root + L"\\ProgramData\\Docker\\internal\\secrets"; }
    std::wstring link(const std::wstring& containerPath) const { return root + containerPath.substr(2); }
};

}  // namespace

TEST_CASE("secrets reach a task through the pipe, and go at cleanup") {
    Node node;
    REQUIRE(node.agent.start() == -1);
    const std::string db = randomMarker(), api = randomMarker();

    auto created = node.ctlRun({L"secret", L"create", L"db", L"-"}, db);
    CHECK(created.exitCode == 0);
    CHECK(created.err.empty());
    REQUIRE(node.ctlRun({L"secret", L"create", L"api"}, api).exitCode == 0);
    auto again = node.ctlRun({L"secret", L"create", L"db"}, db);
    CHECK(again.exitCode == 1);
    CHECK(again.err == "secretshimctl: secret \"db\" already exists\n");

    auto listed = node.ctlRun({L"secret", L"ls", L"--format", L"json"});
    CHECK(listed.exitCode == 0);
    CHECK(has(listed.out, "\"name\":\"api\""));
    CHECK(has(listed.out, "\"name\":\"db\""));
    CHECK_FALSE(has(listed.out, db));

    auto prepared = node.prepare(L"task-1", {L"db", L"source=api,target=C:\\app\\key"});
    CHECK(prepared.exitCode == 0);
    CHECK(prepared.err.empty());
    CHECK(sameBytes(readFile(node.internal() + L"\\0"), db));
    CHECK(sameBytes(readFile(node.internal() + L"\\1"), api));
    CHECK(readText(node.link(L"C:\\ProgramData\\Docker\\secrets\\db")) ==
          std::string(kStandInPrefix) + "..\\internal\\secrets\\0");
    CHECK(readText(node.link(L"C:\\app\\key")) == std::string(kStandInPrefix) + "..\\ProgramData\\Docker\\internal\\secrets\\1");
    // The task record: one, naming the task, holding no value.
    CHECK(countEntries(node.state + L"\\tasks") == 1);

    // In use: not removable; listed with its task.
    auto rm = node.ctlRun({L"secret", L"rm", L"db"});
    CHECK(rm.exitCode == 1);
    CHECK(rm.err == "secretshimctl: secret \"db\" is in use by a running task (\"task-1\")\n");
    CHECK(has(node.ctlRun({L"secret", L"ls", L"--format", L"json"}).out, "\"tasks\":[\"task-1\"]"));
    // Metadata of one secret (names are case-blind here), the tasks and the agent's status.
    auto inspected = node.ctlRun({L"secret", L"inspect", L"DB"});
    CHECK(inspected.exitCode == 0);
    CHECK(has(inspected.out, "\"name\": \"db\""));
    CHECK(has(inspected.out, "\"task-1\""));
    CHECK_FALSE(has(inspected.out, db));
    auto notFound = node.ctlRun({L"secret", L"inspect", L"nosuch"});
    CHECK(notFound.exitCode == 1);
    CHECK(notFound.err == "secretshimctl: secret \"nosuch\" not found\n");
    auto tasks = node.ctlRun({L"task", L"ls", L"--format", L"json"});
    CHECK(tasks.exitCode == 0);
    CHECK(has(tasks.out, "\"id\":\"task-1\",\"secrets\":[\"db\",\"api\"]"));
    auto table = node.ctlRun({L"task", L"ls"});
    CHECK(table.exitCode == 0);
    CHECK(has(table.out, "task-1"));
    auto status = node.ctlRun({L"status"});
    CHECK(status.exitCode == 0);
    CHECK(has(status.out, "\"tasks\": 1"));
    auto twice = node.prepare(L"task-1", {L"db"});
    CHECK(twice.exitCode == 1);
    CHECK(twice.err == "secretshim-hook: prepare: task \"task-1\": is already prepared (clean it up first)\n");

    // A second name for the first file's bytes, to see cleanup overwrite
    // them (not just unlink them).
    const std::wstring spy = node.work.path() + L"\\spy";
    REQUIRE(::CreateHardLinkW(spy.c_str(), (node.internal() + L"\\0").c_str(), nullptr));

    auto cleaned = node.cleanup(L"task-1");
    CHECK(cleaned.exitCode == 0);
    CHECK(cleaned.err.empty());
    CHECK(allZero(readFile(spy), db.size()));
    CHECK_FALSE(pathExists(node.internal()));
    CHECK_FALSE(pathExists(node.link(L"C:\\ProgramData\\Docker\\secrets\\db")));
    CHECK_FALSE(pathExists(node.link(L"C:\\app\\key")));
    CHECK(countEntries(node.state + L"\\tasks") == 0);
    // Idempotent.
    CHECK(node.cleanup(L"task-1").exitCode == 0);
    CHECK(node.cleanup(L"never-prepared").exitCode == 0);
    CHECK(node.ctlRun({L"secret", L"rm", L"db"}).exitCode == 0);

    // No value in anything the agent logged.
    node.agent.kill();
    const std::string log = node.agent.log();
    CHECK(has(log, "prepared task \"task-1\": 2 secret file(s) (db, api)"));
    CHECK_FALSE(has(log, db));
    CHECK_FALSE(has(log, api));
}

TEST_CASE("after an agent crash, the restarted agent cleans up what the first one prepared") {
    Node node;
    REQUIRE(node.agent.start() == -1);
    const std::string db = randomMarker();
    REQUIRE(node.ctlRun({L"secret", L"create", L"db"}, db).exitCode == 0);
    REQUIRE(node.prepare(L"task-crash", {L"db", L"source=db,target=C:\\etc\\pw"}).exitCode == 0);
    node.agent.kill();
    // The container keeps its secrets while the agent is down.
    CHECK(sameBytes(readFile(node.internal() + L"\\1"), db));

    REQUIRE(node.agent.start() == -1);
    CHECK(node.prepare(L"task-crash", {L"db"}).exitCode == 1);  // still known, from its record
    // A file a crash in the middle of an update would have left.
    REQUIRE(writeFile(node.internal() + L"\\0.new", db));
    auto cleaned = node.cleanup(L"task-crash");
    CHECK(cleaned.exitCode == 0);
    CHECK(cleaned.err.empty());
    CHECK_FALSE(pathExists(node.internal()));
    CHECK_FALSE(pathExists(node.link(L"C:\\ProgramData\\Docker\\secrets\\db")));
    CHECK_FALSE(pathExists(node.link(L"C:\\etc\\pw")));
    CHECK(node.cleanup(L"task-crash").exitCode == 0);
    CHECK(has(node.agent.log(), "adopted task \"task-crash\" from its record"));
}

TEST_CASE("secret rotate: the store and a prepared task's files get the new value; a missing secret is refused") {
    Node node;
    REQUIRE(node.agent.start() == -1);
    const std::string before = randomMarker(), after = randomMarker() + "-longer";
    REQUIRE(node.ctlRun({L"secret", L"create", L"db"}, before).exitCode == 0);
    REQUIRE(node.prepare(L"task-rot", {L"db", L"source=db,target=C:\\etc\\pw"}).exitCode == 0);
    auto rotated = node.ctlRun({L"secret", L"rotate", L"db"}, after);
    CHECK(rotated.exitCode == 0);
    CHECK(has(rotated.out, "db version 2: 1 running task(s) updated"));
    CHECK(sameBytes(readFile(node.internal() + L"\\0"), after));
    CHECK(sameBytes(readFile(node.internal() + L"\\1"), after));
    auto missing = node.ctlRun({L"secret", L"rotate", L"nope"}, after);
    CHECK(missing.exitCode == 1);
    CHECK(has(missing.err, "secret \"nope\" does not exist"));
    CHECK(node.cleanup(L"task-rot").exitCode == 0);
    node.agent.kill();
    const std::string log = node.agent.log();
    CHECK(has(log, "secret \"db\" rotated to version 2"));
    CHECK_FALSE(has(log, before));
    CHECK_FALSE(has(log, after));
}

TEST_CASE("tasks prepared and cleaned up in parallel each get their own secrets") {
    Node node;
    REQUIRE(node.agent.start() == -1);
    constexpr int kTasks = 4;
    std::vector<std::string> values;
    for (int i = 0; i < kTasks; ++i) {
        values.push_back(randomMarker());
        REQUIRE(node.ctlRun({L"secret", L"create", L"s" + std::to_wstring(i)}, values.back()).exitCode == 0);
    }
    std::vector<std::wstring> roots;
    for (int i = 0; i < kTasks; ++i) {
        roots.push_back(node.work.path() + L"\\root" + std::to_wstring(i));
        REQUIRE_MESSAGE(::CreateDirectoryW(roots.back().c_str(), nullptr), "error " << ::GetLastError());
    }
    const auto all = [&](const wchar_t* stage) {
        std::vector<RunResult> results(kTasks);
        std::vector<std::thread> threads;
        for (int i = 0; i < kTasks; ++i)
            threads.emplace_back([&, i] {
                std::vector<std::wstring> args{std::wstring(stage), L"--root", roots[i].substr(4), L"--task",
                                               L"par-" + std::to_wstring(i)};
                if (std::wstring(stage) == L"prepare") args.insert(args.end(), {L"--secret", L"s" + std::to_wstring(i)});
                results[i] = node.hookRun(args);
            });
        for (auto& t : threads) t.join();
        return results;
    };
    for (const RunResult& r : all(L"prepare")) CHECK(r.exitCode == 0);
    for (int i = 0; i < kTasks; ++i)
        CHECK(sameBytes(readFile(roots[i] + L"\\ProgramData\\Docker\\internal\\secrets\\0"), values[i]));
    for (const RunResult& r : all(L"cleanup")) CHECK(r.exitCode == 0);
    for (int i = 0; i < kTasks; ++i) CHECK_FALSE(pathExists(roots[i] + L"\\ProgramData\\Docker\\internal\\secrets"));
    CHECK(countEntries(node.state + L"\\tasks") == 0);
}

TEST_CASE("refusals: one line, exit 1, nothing left in the root") {
    Node node;
    REQUIRE(node.agent.start() == -1);
    REQUIRE(node.ctlRun({L"secret", L"create", L"db"}, randomMarker()).exitCode == 0);

    for (const wchar_t* spec : {L"source=db,uid=1000", L"source=db,gid=0", L"source=db,mode=0400"}) {
        auto r = node.prepare(L"task-r", {spec});
        CHECK(r.exitCode == 1);
        CHECK(oneLine(r.err));
        CHECK(has(r.err, "secretshim-hook: prepare: task \"task-r\": secret spec "));
        CHECK(has(r.err, "is not supported on Windows"));
    }
    auto outside = node.prepare(L"task-r", {L"source=db,target=C:\\..\\..\\escape"});
    CHECK(outside.exitCode == 1);
    CHECK(oneLine(outside.err));
    CHECK(has(outside.err, "target \"C:\\..\\..\\escape\""));
    auto drive = node.prepare(L"task-r", {L"source=db,target=D:\\x"});
    CHECK(drive.exitCode == 1);
    CHECK(oneLine(drive.err));
    auto missing = node.prepare(L"task-r", {L"db", L"nosuch"});
    CHECK(missing.exitCode == 1);
    CHECK(missing.err == "secretshim-hook: prepare: task \"task-r\": no secret \"nosuch\"\n");
    auto badTask = node.prepare(L"../x", {L"db"});
    CHECK(badTask.exitCode == 1);
    CHECK(oneLine(badTask.err));
    auto relative = node.hookRun({L"prepare", L"--root", L"relative\\root", L"--task", L"t", L"--secret", L"db"});
    CHECK(relative.exitCode == 1);
    CHECK(has(relative.err, "is not an absolute Windows path"));
    CHECK(countEntries(node.root) == 0);
    CHECK(countEntries(node.state + L"\\tasks") == 0);

    // An image whose ProgramData is a link leading out of the root.
    const char* fixture = std::getenv("SECRETSHIM_E2E_HOSTILE_DIR");
    REQUIRE(fixture != nullptr);
    const std::wstring hostileOutside = L"\\\\?\\" + widen(fixture) + L"\\outside";
    clearDirectory(hostileOutside);
    auto hostile = node.hookRun({L"prepare", L"--root", widen(fixture) + L"\\root", L"--task", L"task-h",
                                 L"--secret", L"db"});
    CHECK(hostile.exitCode == 1);
    CHECK(hostile.err == "secretshim-hook: prepare: task \"task-h\": attaching secrets: C:\\ProgramData is a reparse "
                         "point (a link or junction in the image); refusing to follow it\n");
    CHECK(countEntries(hostileOutside) == 0);

    // Usage errors are exit 2.
    CHECK(node.hookRun({L"prepare", L"--root", widen(node.rootPlain)}).exitCode == 2);
    CHECK(node.hookRun({L"bogus"}).exitCode == 2);
    // No secrets asked for: nothing to do, the agent is not asked.
    CHECK(node.hookRun({L"prepare", L"--root", widen(node.rootPlain), L"--task", L"t0"}).exitCode == 0);
}

TEST_CASE("the pipe refuses bad messages with one line and keeps serving") {
    Node node;
    REQUIRE(node.agent.start() == -1);
    auto path = plugin::pipePath(narrow(node.pipe));
    REQUIRE(path.has_value());
    auto connection = plugin::PipeConnection::connect(*path, plugin::Millis{10000});
    REQUIRE(connection.has_value());

    const auto rawExchange = [&](const std::string& bytes) {
        OVERLAPPED ov{};
        ov.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        DWORD n = 0;
        if (!::WriteFile(connection->handle(), bytes.data(), static_cast<DWORD>(bytes.size()), nullptr, &ov))
            REQUIRE(::GetLastError() == ERROR_IO_PENDING);
        REQUIRE(::GetOverlappedResult(connection->handle(), &ov, &n, TRUE));
        ::CloseHandle(ov.hEvent);
        auto reply = connection->receive(plugin::Millis{10000});
        REQUIRE(reply.has_value());
        return *reply;
    };
    auto notJson = rawExchange("this is not json");
    CHECK(notJson["ok"] == false);
    CHECK(notJson["error"] == "malformed message (not a JSON object)");
    auto array = rawExchange("[1,2]");
    CHECK(array["error"] == "malformed message (not a JSON object)");
    auto oversized = rawExchange("{\"op\":\"" + std::string(70 * 1024, 'x') + "\"}");
    CHECK(oversized["error"] == "message over 65536 bytes");
    auto unknown = rawExchange("{\"op\":\"rm -rf\"}");
    CHECK(unknown["error"] == "unknown request \"rm -rf\"");
    auto typed = rawExchange("{\"op\":\"create\",\"id\":5}");
    CHECK(typed["error"] == "malformed message: \"id\" is not a string");
    for (const nlohmann::json* reply : {&notJson, &oversized, &unknown, &typed})
        CHECK_FALSE(has((*reply)["error"].get<std::string>(), "\n"));
    // Still serving, on this connection and new ones.
    REQUIRE(connection->send(plugin::SecretNameRequest{plugin::op::secretLs, ""}.toJson(), plugin::Millis{10000}).has_value());
    auto listed = connection->receive(plugin::Millis{10000});
    REQUIRE(listed.has_value());
    CHECK((*listed)["ok"] == true);
    CHECK(node.ctlRun({L"secret", L"ls"}).exitCode == 0);
    CHECK(has(node.agent.log(), "refused a message: malformed message (not a JSON object)"));

    // A second agent on the same pipe refuses to start.
    Agent second(node.pipe, node.work.path() + L"\\state2", node.work.path() + L"\\second.log");
    CHECK(second.start() == 1);
    CHECK(has(second.log(), "already exists (another agent is running, or a process took its name)"));
}

TEST_CASE("the installed secretshimd.exe itself: links for real, or a clean refusal where they are not made") {
    Node node;
    Agent real(node.pipe + L"-real", node.state, node.work.path() + L"\\real.log", "SECRETSHIM_AGENT_EXE");
    REQUIRE(real.start() == -1);
    const std::string db = randomMarker();
    REQUIRE(run(node.ctl, {L"--pipe", node.pipe + L"-real", L"secret", L"create", L"db"}, db).exitCode == 0);
    const auto hook = [&](const wchar_t* stage) {
        std::vector<std::wstring> args{L"--pipe", node.pipe + L"-real", stage, L"--root", widen(node.rootPlain),
                                       L"--task", L"real-1"};
        if (std::wstring(stage) == L"prepare") args.insert(args.end(), {L"--secret", L"db"});
        return run(node.hook, args);
    };
    auto prepared = hook(L"prepare");
    if (runningUnderWine()) {
        // wine's CreateSymbolicLinkW creates nothing: the container must not
        // start, and nothing may be left behind.
        CHECK(prepared.exitCode == 1);
        CHECK(oneLine(prepared.err));
        CHECK(has(prepared.err, "(symbolic links are not supported here)"));
        CHECK_FALSE(pathExists(node.internal()));
        CHECK(countEntries(node.state + L"\\tasks") == 0);
        MESSAGE("wine 8 creates no symbolic links: the real agent is checked to refuse and leave nothing");
    } else {
        CHECK(prepared.exitCode == 0);
        CHECK(sameBytes(readFile(node.link(L"C:\\ProgramData\\Docker\\secrets\\db")), db));
    }
    CHECK(hook(L"cleanup").exitCode == 0);
    CHECK_FALSE(pathExists(node.internal()));
    CHECK_FALSE(pathExists(node.link(L"C:\\ProgramData\\Docker\\secrets\\db")));
    real.kill();
    CHECK_FALSE(has(real.log(), db));
}

TEST_CASE("the hook says so in one line when no agent answers") {
    TempDir work(L"e2e-noagent");
    auto r = run(exeFromEnv("SECRETSHIM_HOOK_EXE"),
                 {L"--pipe", L"secretshim-e2e-nobody", L"--timeout", L"1", L"prepare", L"--root", L"C:\\r", L"--task",
                  L"t", L"--secret", L"db"});
    CHECK(r.exitCode == 1);
    CHECK(oneLine(r.err));
    CHECK(has(r.err, "secretshim-hook: prepare: task \"t\": cannot reach the secretshim agent at "));
}

namespace {

// Starts `exe` without waiting, as `token`'s user (the caller's own token if null).
HANDLE startAs(HANDLE token, const std::wstring& exe, const std::vector<std::wstring>& args) {
    STARTUPINFOW si{};
    si.cb = sizeof si;
    PROCESS_INFORMATION pi{};
    std::wstring line = commandLine(exe, args);
    const BOOL started = token != nullptr
        ? ::CreateProcessAsUserW(token, exe.c_str(), line.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi)
        : ::CreateProcessW(exe.c_str(), line.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi);
    REQUIRE(started);
    ::CloseHandle(pi.hThread);
    return pi.hProcess;
}

// Called once the client has exited: the squatter sees its disconnect and
// writes its last line. Under wine on a loaded machine that was once seen
// to take over 10 s, so it is given 30 before it is killed (and its line lost).
void finish(HANDLE process) {
    if (::WaitForSingleObject(process, 30000) != WAIT_OBJECT_0) ::TerminateProcess(process, 99);
    ::WaitForSingleObject(process, 10000);
    ::CloseHandle(process);
}


}  // namespace

TEST_CASE("the hook and the CLI send nothing to a pipe served by a process that is not the agent") {
    TempDir work(L"e2e-squatter");
    const std::wstring squatter = exeFromEnv("SECRETSHIM_SQUATTER_EXE");
    const std::wstring hook = exeFromEnv("SECRETSHIM_HOOK_EXE");
    const std::wstring ctl = exeFromEnv("SECRETSHIM_CTL_EXE");
    const std::wstring pipe = L"secretshim-e2e-squat-" + std::to_wstring(::GetCurrentProcessId());
    const auto prepare = [&](const std::wstring& name) {
        return run(hook, {L"--pipe", name, L"--timeout", L"10", L"prepare", L"--root", L"C:\\r", L"--task", L"t1",
                          L"--secret", L"db"});
    };

    HANDLE filtered = filteredToken();
    auto standing = plugin::tokenStanding(filtered);
    REQUIRE(standing.has_value());
    CHECK_FALSE(standing->administrator);
    CHECK_FALSE(plugin::mayServeAgentPipe(*standing));

    // A squatter running as a non-elevated administrator took the name.
    const std::wstring seen = work.path() + L"\\hook.txt";
    HANDLE process = startAs(filtered, squatter, {pipe, seen.substr(4)});
    auto refused = prepare(pipe);
    finish(process);
    CHECK(refused.exitCode == 1);
    CHECK(oneLine(refused.err));
    CHECK(has(refused.err, "secretshim-hook: prepare: task \"t1\": the process serving the pipe \"\\\\.\\pipe\\" +
                               narrow(pipe) + "\" (pid "));
    CHECK(has(refused.err, "runs neither as SYSTEM nor as an elevated administrator: it is not the secretshim agent"));
    CHECK(has(readText(seen), "admin=0 received 0 bytes"));
    MESSAGE("squatter: " << readText(seen));

    // secretshimctl never sends it a value either.
    const std::string value = randomMarker();
    const std::wstring seenByCtl = work.path() + L"\\ctl.txt";
    process = startAs(filtered, squatter, {pipe, seenByCtl.substr(4)});
    auto created = run(ctl, {L"--pipe", pipe, L"secret", L"create", L"db"}, value);
    finish(process);
    CHECK(created.exitCode == 1);
    CHECK(oneLine(created.err));
    CHECK(has(created.err, "it is not the secretshim agent"));
    CHECK(has(readText(seenByCtl), "received 0 bytes"));
    ::CloseHandle(filtered);

    // The same squatter with this test's own token (an elevated
    // administrator, or SYSTEM) is served: the token made the difference.
    // An administrator can take over the node anyway.
    const std::wstring seenAsAdmin = work.path() + L"\\admin.txt";
    process = startAs(nullptr, squatter, {pipe, seenAsAdmin.substr(4)});
    auto served = prepare(pipe);
    finish(process);
    CHECK(served.exitCode == 0);
    CHECK(has(readText(seenAsAdmin), "admin=1 received "));
    CHECK_FALSE(has(readText(seenAsAdmin), "received 0 bytes"));
}

TEST_CASE("the agent refuses an existing state directory that is not private, in one line") {
    Node node;
    // Users may read it: refused on Windows for its DACL; under wine, which
    // shows the unix user as every file's owner, for its owner.
    PSECURITY_DESCRIPTOR open = nullptr;
    REQUIRE(::ConvertStringSecurityDescriptorToSecurityDescriptorW(
        L"O:BAD:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;FR;;;BU)", SDDL_REVISION_1, &open, nullptr));
    SECURITY_ATTRIBUTES attributes{sizeof attributes, open, FALSE};
    REQUIRE(::CreateDirectoryW(node.state.c_str(), &attributes));
    ::LocalFree(open);
    Agent real(node.pipe + L"-acl", node.state, node.work.path() + L"\\acl.log", "SECRETSHIM_AGENT_EXE");
    CHECK(real.start() == 1);
    const std::string said = real.log();
    CHECK(oneLine(said));
    CHECK(has(said, "secretshimd: state directory: \"" + narrow(node.state.substr(4)) + "\" already exists and is not private: its "));
    if (runningUnderWine())
        CHECK(has(said, "its owner is S-1-5-21-"));
    else
        CHECK(has(said, "its DACL allows S-1-5-32-545"));
    MESSAGE("agent: " << said);
    CHECK_FALSE(pathExists(node.state + L"\\node.key"));
    CHECK_FALSE(pathExists(node.state + L"\\secrets"));
}
