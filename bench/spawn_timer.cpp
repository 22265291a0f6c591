// Times a program started again and again with a file on its stdin, next to
// a baseline program run the same way in the same process, and prints
// median, p90 and p99 wall times. Used for the hook's fast path: a
// container without secrets must cost the hook next to nothing.
//
// usage: spawn_timer RUNS STDIN_FILE [--raw] -- PROGRAM ARGS... -- BASELINE ARGS...
// --raw prints each measured pair instead ("PROGRAM_US BASELINE_US" a line),
// for bench/harness.py.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

double runOnce(const std::vector<char*>& argv, const char* input) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const auto start = std::chrono::steady_clock::now();
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
        std::perror("posix_spawn");
        std::exit(1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const auto end = std::chrono::steady_clock::now();
    posix_spawn_file_actions_destroy(&actions);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "%s failed\n", argv[0]);
        std::exit(1);
    }
    return std::chrono::duration<double, std::micro>(end - start).count();
}

void report(const char* name, std::vector<double> t) {
    std::sort(t.begin(), t.end());
    const auto at = [&](double q) { return t[static_cast<std::size_t>(q * static_cast<double>(t.size() - 1))]; };
    std::printf("%-28s %8zu %10.1f %10.1f %10.1f\n", name, t.size(), at(0.5), at(0.9), at(0.99));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: spawn_timer RUNS STDIN_FILE [--raw] -- PROGRAM ARGS... -- BASELINE ARGS...\n");
        return 2;
    }
    const int runs = std::atoi(argv[1]);
    const char* input = argv[2];
    std::vector<char*> program, baseline;
    const bool raw = std::strcmp(argv[3], "--raw") == 0;
    int i = raw ? 5 : 4;
    for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) program.push_back(argv[i]);
    for (++i; i < argc; ++i) baseline.push_back(argv[i]);
    program.push_back(nullptr);
    baseline.push_back(nullptr);
    if (program.size() < 2 || baseline.size() < 2) return 2;

    std::vector<double> a, b;
    for (int w = 0; w < runs / 10 + 1; ++w) {  // warm-up, discarded
        runOnce(program, input);
        runOnce(baseline, input);
    }
    for (int r = 0; r < runs; ++r) {  // interleaved: noise hits both alike
        a.push_back(runOnce(program, input));
        b.push_back(runOnce(baseline, input));
    }
    if (raw) {
        for (std::size_t k = 0; k < a.size(); ++k) std::printf("%.1f %.1f\n", a[k], b[k]);
        return 0;
    }
    std::printf("%-28s %8s %10s %10s %10s\n", "wall time (us)", "runs", "median", "p90", "p99");
    report(program[0] + std::string(program[0]).rfind('/') + 1, a);
    report(baseline[0] + std::string(baseline[0]).rfind('/') + 1, b);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::printf("median difference: %.1f us\n", a[a.size() / 2] - b[b.size() / 2]);
    return 0;
}
