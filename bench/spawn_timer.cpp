// Times a program started again and again with a file on its stdin, next to
// a baseline program (or several) run the same way in the same process, and
// prints median, p90 and p99 wall times. Used for the hook's fast path: a
// container without secrets must cost the hook next to nothing.
//
// usage: spawn_timer RUNS STDIN_FILE [--raw] -- PROGRAM ARGS... -- BASELINE ARGS... [-- OTHER ARGS...]...
// The programs run in turn, the first of each round rotating (A B C, B C A,
// C A B, ...), so that drift hits all alike. --raw prints each measured round
// instead, one line per round: for every program in the order given, its
// wall time and its CPU time (user + system, from wait4), in us, for
// row 1 (bench/shimbench/rows/row1_fastpath.py).
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
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

struct Sample {
    double wall = 0;  // us
    double cpu = 0;   // us, user + system of the child
};

double micros(const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec); }

Sample runOnce(const std::vector<char*>& argv, const char* input) {
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
    rusage usage {};
    if (wait4(pid, &status, 0, &usage) != pid) {
        std::perror("wait4");
        std::exit(1);
    }
    const auto end = std::chrono::steady_clock::now();
    posix_spawn_file_actions_destroy(&actions);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "%s failed\n", argv[0]);
        std::exit(1);
    }
    return {std::chrono::duration<double, std::micro>(end - start).count(),
            micros(usage.ru_utime) + micros(usage.ru_stime)};
}

void report(const char* name, std::vector<double> t) {
    std::sort(t.begin(), t.end());
    const auto at = [&](double q) { return t[static_cast<std::size_t>(q * static_cast<double>(t.size() - 1))]; };
    std::printf("%-28s %8zu %10.1f %10.1f %10.1f\n", name, t.size(), at(0.5), at(0.9), at(0.99));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr,
                     "usage: spawn_timer RUNS STDIN_FILE [--raw] -- PROGRAM ARGS... -- BASELINE ARGS... "
                     "[-- OTHER ARGS...]...\n");
        return 2;
    }
    const int runs = std::atoi(argv[1]);
    const char* input = argv[2];
    const bool raw = std::strcmp(argv[3], "--raw") == 0;
    std::vector<std::vector<char*>> programs;
    for (int i = raw ? 4 : 3; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0) programs.emplace_back();
        else if (!programs.empty()) programs.back().push_back(argv[i]);
        else return 2;
    }
    for (auto& p : programs) {
        if (p.empty()) return 2;
        p.push_back(nullptr);
    }
    const std::size_t n = programs.size();
    if (runs < 1 || n < 2) return 2;

    std::vector<std::vector<Sample>> samples(n);
    for (int r = -(runs / 10 + 1); r < runs; ++r) {  // the first rounds are a warm-up, discarded
        const std::size_t first = static_cast<std::size_t>(r + runs) % n;
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t which = (first + k) % n;
            const Sample s = runOnce(programs[which], input);
            if (r >= 0) samples[which].push_back(s);
        }
    }
    if (raw) {
        for (int r = 0; r < runs; ++r) {
            for (std::size_t k = 0; k < n; ++k)
                std::printf("%s%.1f %.1f", k ? " " : "", samples[k][static_cast<std::size_t>(r)].wall,
                            samples[k][static_cast<std::size_t>(r)].cpu);
            std::printf("\n");
        }
        return 0;
    }
    std::printf("%-28s %8s %10s %10s %10s\n", "wall time (us)", "runs", "median", "p90", "p99");
    std::vector<double> medians;
    for (std::size_t k = 0; k < n; ++k) {
        std::vector<double> wall;
        for (const auto& s : samples[k]) wall.push_back(s.wall);
        report(programs[k][0] + std::string(programs[k][0]).rfind('/') + 1, wall);
        std::sort(wall.begin(), wall.end());
        medians.push_back(wall[wall.size() / 2]);
    }
    std::printf("median difference: %.1f us\n", medians[0] - medians[1]);
    return 0;
}
