// A flush never leaves the view, never waits on a file the container made,
// and never unlinks anything outside: what a re-adopted view (the
// container's own tree, as mounted at our targets) may hold in place of a
// secret file. No mounts needed: a temp directory plays the view.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "platform/linux/view_file.hpp"
#include "tests/support/temp_dir.hpp"

using namespace secretshim;
using namespace secretshim::platform;
namespace fs = std::filesystem;

using secretshim::test::TempDir;

namespace {

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
std::string read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

UniqueFd openDir(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
}

std::string error(const Result<void>& r) { return r ? std::string("ok") : r.error().message; }

const std::string kMarker = "view-file-MARKER-58c1";

TEST_CASE("a secret file is zeroed before it is unlinked: an open reader then reads zeros") {
    TempDir view;
    fs::create_directories(view / "dir/tls");
    write(view / "dir/tls/key", kMarker);
    UniqueFd reader(::open((view / "dir/tls/key").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(reader);
    UniqueFd root = openDir(view.path());
    CHECK(error(wipeAndUnlink(root.get(), "dir/tls/key")) == "ok");
    CHECK_FALSE(fs::exists(view / "dir/tls/key"));
    char buf[64] = {};
    CHECK(::pread(reader.get(), buf, sizeof buf, 0) == 0);  // truncated after the zeros
    struct stat st {};
    REQUIRE(::fstat(reader.get(), &st) == 0);
    CHECK(st.st_size == 0);
}

TEST_CASE("a FIFO named like a secret is neither waited on nor removed") {
    TempDir view;
    fs::create_directories(view / "dir");
    REQUIRE(::mkfifo((view / "dir/db_pass").c_str(), 0666) == 0);
    UniqueFd root = openDir(view.path());
    // No reader: the open fails at once (ENXIO) instead of blocking forever.
    const auto start = std::chrono::steady_clock::now();
    auto r = wipeAndUnlink(root.get(), "dir/db_pass");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("opening dir/db_pass") == 0);
    CHECK(fs::is_fifo(view / "dir/db_pass"));
    // A reader waiting: opened without blocking, then refused, nothing written.
    UniqueFd readEnd(::open((view / "dir/db_pass").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    REQUIRE(readEnd);
    r = wipeAndUnlink(root.get(), "dir/db_pass");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "dir/db_pass is not a regular file: left as it is");
    CHECK(fs::is_fifo(view / "dir/db_pass"));
    char byte = 0;
    CHECK(::read(readEnd.get(), &byte, 1) <= 0);  // nothing written to it
}

TEST_CASE("symlinks lead nowhere: neither the last component nor a directory on the way") {
    TempDir view, host;
    fs::create_directories(view / "dir");
    write(host / "node.key", kMarker);
    fs::create_symlink(host / "node.key", view / "dir/db_pass");
    fs::create_symlink(host.path(), view / "dir/sub");
    UniqueFd root = openDir(view.path());
    CHECK(error(wipeAndUnlink(root.get(), "dir/db_pass")).find("opening dir/db_pass") == 0);
    CHECK(error(wipeAndUnlink(root.get(), "dir/sub/node.key")).find("opening the directory of dir/sub/node.key") == 0);
    CHECK(read(host / "node.key") == kMarker);
    CHECK(fs::is_symlink(view / "dir/db_pass"));
    // Out of the view by "..": refused.
    CHECK(error(wipeAndUnlink(root.get(), "../x")).find("opening the directory of ../x") == 0);
    CHECK(error(wipeAndUnlink(root.get(), "dir/..")) == "dir/.. is not a file name");
}

// What a flush after re-adoption does, thousands of times, while another
// thread flips dir/a between a directory of the view and a symlink to a host
// directory holding a canary named like the secret. Returns how many of
// `tries` flushes found the view's own file, and whether the canary stayed.
template <class Flush>
std::pair<int, bool> race(int tries, Flush flush) {
    TempDir view, host;
    fs::create_directories(view / "dir/a.real");
    fs::create_symlink(host.path(), view / "dir/a.link");
    write(host / "x", kMarker);
    UniqueFd root = openDir(view.path());
    std::atomic<bool> stop{false};
    std::thread flipper([&] {
        const std::string a = view / "dir/a", real = view / "dir/a.real", link = view / "dir/a.link";
        while (!stop) {
            (void)::rename(real.c_str(), a.c_str());
            (void)::rename(a.c_str(), real.c_str());
            (void)::rename(link.c_str(), a.c_str());
            (void)::rename(a.c_str(), link.c_str());
        }
    });
    int found = 0;
    for (int i = 0; i < tries && fs::exists(host / "x"); ++i) {
        std::ofstream(view / "dir/a.real/x") << kMarker;  // fails while a.real is at dir/a: fine
        found += flush(root.get()) ? 1 : 0;
    }
    stop = true;
    flipper.join();
    return {found, fs::exists(host / "x") && read(host / "x") == kMarker};
}

}  // namespace

TEST_CASE("a directory swapped for a symlink out of the view while files are flushed: the host file stays") {
    // The positive control: unlinking by the whole path, as the flush did,
    // follows the swapped symlink and removes the host's file.
    const auto naive = race(20000, [](int root) { return ::unlinkat(root, "dir/a/x", 0) == 0; });
    CHECK_MESSAGE(!naive.second, "the race never hit in 20000 tries: this machine cannot show it");
    const auto [found, canary] = race(5000, [](int root) { return wipeAndUnlink(root, "dir/a/x").has_value(); });
    MESSAGE(found << " of 5000 flushes found the view's own file, through the directory of the view");
    CHECK(found > 0);
    CHECK(canary);
}

// wipeTree: what the agent runs through a view the fd store kept for a
// container that exited while no agent ran, or for no task at all.
TEST_CASE("wipeTree zeroes and removes every regular file below the root, however deep, but the kept ones") {
    TempDir view;
    fs::create_directories(view / "dir/a/b");
    fs::create_directories(view / "file/etc/app");
    std::string deep = "file";  // 300 levels: one directory open at a time
    for (int i = 0; i < 300; ++i) deep += "/d";
    fs::create_directories(view / deep);
    for (const char* f : {"dir/top", "dir/a/b/nested", "file/etc/app/key", ".update"}) write(view / f, kMarker);
    write(view / (deep + "/x"), kMarker);
    write(view / "dir/kept", kMarker);
    UniqueFd reader(::open((view / "dir/a/b/nested").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(reader);
    UniqueFd root = openDir(view.path());

    auto wiped = wipeTree(root.get(), {"dir/kept"});
    REQUIRE_MESSAGE(wiped.has_value(), wiped.error().message);
    CHECK(*wiped == 5);
    std::size_t left = 0;
    for (const auto& e : fs::recursive_directory_iterator(view.path()))
        if (!e.is_directory()) ++left;
    CHECK(left == 1);
    CHECK(read(view / "dir/kept") == kMarker);
    char buf[64] = {};
    CHECK(::pread(reader.get(), buf, sizeof buf, 0) == 0);  // zeroed, then truncated
    CHECK(wipeTree(root.get()).value_or(0) == 1);  // and nothing is kept now
}

TEST_CASE("wipeTree follows no symlink out of the view, waits on no FIFO, and says what it left") {
    TempDir view, host;
    fs::create_directories(view / "dir");
    write(host / "node.key", kMarker);
    fs::create_symlink(host / "node.key", view / "dir/link");
    fs::create_symlink(host.path(), view / "dir/sub");
    REQUIRE(::mkfifo((view / "dir/fifo").c_str(), 0666) == 0);
    write(view / "dir/secret", kMarker);
    UniqueFd root = openDir(view.path());
    const auto start = std::chrono::steady_clock::now();
    auto wiped = wipeTree(root.get());
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    REQUIRE_FALSE(wiped.has_value());
    CHECK(wiped.error().message.find("opening dir/") == 0);  // the first thing it left
    CHECK_FALSE(fs::exists(view / "dir/secret"));             // every file was tried
    CHECK(read(host / "node.key") == kMarker);
    CHECK(fs::is_symlink(view / "dir/link"));
    CHECK(fs::is_fifo(view / "dir/fifo"));
}
