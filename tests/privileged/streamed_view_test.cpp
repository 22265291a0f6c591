// A view built from the store's sealed records (SealedPayloads): each value
// is decrypted straight into its file. Checked from inside a throwaway
// container; a record tampered mid-task fails the build with one line and
// leaves no plaintext in the view. Values are random-looking patterns
// compared in code, never printed.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "plugin/store/local_store.hpp"
#include "tests/support/container_fixture.hpp"
#include "tests/support/pinned_pages.hpp"

using namespace secretshim;
using namespace secretshim::test;
using platform::TmpfsView;
using platform::UniqueFd;
using plugin::LocalStore;
using plugin::SealedPayloads;

namespace {

std::string patterned(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((seed * 131 + i * 7 + i / 251) % 256);
    return s;
}

mountfs::Bytes bytes(const std::string& s) { return {reinterpret_cast<const unsigned char*>(s.data()), s.size()}; }

struct Store {
    TempDir dir;
    LocalStore store;
    Store() : store(open(dir.path() + "/state")) {}
    static LocalStore open(const std::string& path) {
        auto s = LocalStore::open(path);
        REQUIRE(s.has_value());
        return std::move(*s);
    }
    void create(const std::string& name, const std::string& value) {
        REQUIRE(store.create(name, bytes(value)).has_value());
    }
};

// The view's writable root, found among our fds while it is being built: a
// tmpfs holding the view's dir/ and file/ (the newest one, if several).
UniqueFd findViewRoot() {
    int found = -1;
    DIR* fds = ::opendir("/proc/self/fd");
    REQUIRE(fds != nullptr);
    while (const dirent* e = ::readdir(fds)) {
        const int fd = std::atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == ::dirfd(fds)) continue;
        struct statfs sfs {};
        struct stat st {};
        if (::fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC &&
            ::fstatat(fd, "dir", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            ::fstatat(fd, "file", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
            found = std::max(found, fd);
    }
    ::closedir(fds);
    REQUIRE(found >= 0);
    return UniqueFd(::fcntl(found, F_DUPFD_CLOEXEC, 0));
}

std::vector<std::string> entriesOf(int root, const char* dir) {
    std::vector<std::string> names;
    UniqueFd fd(::openat(root, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
    DIR* d = ::fdopendir(fd.release());
    REQUIRE(d != nullptr);
    while (const dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.push_back(e->d_name);
    ::closedir(d);
    return names;
}

// Wraps the store's payloads: when entry `spyAt` is produced, it opens every
// file the view has written so far (and the one being written, once the
// store failed on it) and pins the pages that hold them, to look at them
// after the build returns.
class Spy final : public mountfs::PayloadSource {
public:
    // Opens the files from `from` on (0: all those written before).
    Spy(const mountfs::PayloadSource& inner, std::size_t spyAt, std::vector<std::string> files, std::size_t from = 0)
        : inner_(inner), spyAt_(spyAt), files_(std::move(files)), from_(from) {}
    std::size_t count() const override { return inner_.count(); }
    std::size_t size(std::size_t index) const override { return inner_.size(index); }
    Result<void> produce(std::size_t index, mountfs::PayloadSink& sink) const override {
        if (index != spyAt_) return inner_.produce(index, sink);
        const Spy& report = report_ ? *report_ : *this;
        report.root = findViewRoot();
        report.onCopy = report_ != nullptr;
        for (std::size_t i = from_; i < index; ++i) report.open(files_[i]);
        auto ok = inner_.produce(index, sink);
        report.open(files_[index]);
        return ok;
    }
    // The second thread's copy spies alike and reports here.
    std::unique_ptr<mountfs::PayloadSource> concurrentCopy() const override {
        auto inner = inner_.concurrentCopy();
        if (!inner) return nullptr;
        auto copy = std::make_unique<Spy>(*inner, spyAt_, files_, from_);
        copy->owned_ = std::move(inner);
        copy->report_ = this;
        return copy;
    }
    mutable bool onCopy = false;  // spied on by the second thread's copy
    mutable UniqueFd root;
    mutable std::vector<UniqueFd> held;
    mutable std::vector<off_t> sizesThen;
    mutable std::vector<PinnedPages> pinned;

private:
    void open(const std::string& path) const {
        UniqueFd fd(::openat(root.get(), path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        REQUIRE_MESSAGE(fd, path);
        struct stat st {};
        REQUIRE(::fstat(fd.get(), &st) == 0);
        sizesThen.push_back(st.st_size);
        pinned.emplace_back(fd.get());
        held.push_back(std::move(fd));
    }
    const mountfs::PayloadSource& inner_;
    std::size_t spyAt_;
    std::vector<std::string> files_;
    std::size_t from_;
    std::unique_ptr<mountfs::PayloadSource> owned_;  // a copy's inner source
    const Spy* report_ = nullptr;
};

// Flips the last byte of a secret's record (its tag): the header still
// parses, so the store reads it, and the tag check fails only once all of
// its unauthenticated plaintext went into its file.
void tamper(const Store& s, const std::string& name) {
    const std::string path = s.dir.path() + "/state/secrets/" + name + ".secret";
    std::string raw;
    {
        std::ifstream in(path, std::ios::binary);
        raw.assign(std::istreambuf_iterator<char>(in), {});
    }
    raw.back() ^= 0x20;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << raw;
}

// The paths of a layout's files in the view, in entry order.
std::vector<std::string> filesOf(const mountfs::ViewLayout& layout) {
    std::vector<std::string> files;
    for (const auto& e : layout.entries) files.push_back(e.file);
    return files;
}

// `count` secrets PREFIX0, PREFIX1... of `size` bytes each, stored, and a
// task naming each once under /run/secrets.
struct StoredTask {
    std::vector<std::string> names, values;
    std::vector<mountfs::SecretRef> refs;
    std::vector<std::size_t> which;  // entry i holds secret i
};

StoredTask storeTask(Store& s, const std::string& prefix, unsigned count, std::size_t size, unsigned seed) {
    StoredTask t;
    std::string annotation;
    for (unsigned i = 0; i < count; ++i) {
        t.names.push_back(prefix + std::to_string(i));
        t.values.push_back(patterned(size, seed + i));
        s.create(t.names.back(), t.values.back());
        annotation += (i ? ";" : "") + t.names.back();
        t.which.push_back(i);
    }
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE(refs.has_value());
    t.refs = std::move(*refs);
    return t;
}

// Tampers with t.names[index], an entry of the second thread's half, and
// builds the view: the build fails on it with the one line, after all its
// plaintext went into its file; that file ends zeroed and unlinked and the
// view holds no file. Returns the file's size(s) as seen when it failed.
std::vector<off_t> failInSecondThread(const Store& s, const StoredTask& t, std::size_t index) {
    const auto& [names, values, refs, which] = t;
    tamper(s, names[index]);
    auto layout = mountfs::planView(refs);
    REQUIRE(layout.has_value());
    const std::vector<std::string> files = filesOf(*layout);
    auto sealed = s.store.readMany(names);
    REQUIRE(sealed.has_value());
    const SealedPayloads payloads(*sealed, which);
    // Spies on that entry alone (the other thread's files may still be in progress).
    const Spy spy(payloads, index, files, index);
    auto view = TmpfsView::build(std::move(*layout), spy, {}, platform::kernelFeatures());
    REQUIRE(!view.has_value());
    CHECK(view.error().message == "secret \"" + names[index] + "\": cannot decrypt (corrupt or tampered)");
    REQUIRE(spy.held.size() == 1);
    CHECK(spy.onCopy);  // the second thread's
    struct stat st {};
    REQUIRE(::fstat(spy.held[0].get(), &st) == 0);
    CHECK(st.st_size == 0);
    CHECK(st.st_nlink == 0);
    // The very pages that held its plaintext now hold zeros.
    const bool held = spy.pinned[0].then() == t.values[index];
    CHECK_MESSAGE(held, "the pinned pages did not hold the value");
    CHECK_MESSAGE(spy.pinned[0].zeroedNow(), "the pages that held the value were not overwritten");
    CHECK(entriesOf(spy.root.get(), "dir").empty());
    return spy.sizesThen;
}

// A busybox container in a temp dir of its own, with `view` attached.
struct AttachedContainer {
    explicit AttachedContainer(TmpfsView& view) {
        REQUIRE(view.attach({c.pidfd(), c.rootfs()}).has_value());
    }
    static std::string rootfsIn(const TempDir& dir) {
        const std::string rootfs = dir.path() + "/rootfs";
        makeBusyboxRootfs(rootfs);
        return rootfs;
    }
    TempDir dir;
    FakeContainer c{rootfsIn(dir)};
};

}  // namespace

TEST_CASE("a view built from sealed records holds exactly each value, a secret used twice in both files") {
    Store s;
    // 64 B, pieces of 64 KiB, and over the 1 MiB the store holds from its
    // first read (the last ones are read again when their turn comes).
    const std::vector<std::string> names = {"small", "mid", "large", "max"};
    const std::vector<std::string> values = {patterned(64, 1), patterned(200000, 2), patterned(450000, 3),
                                             patterned(500 * 1024, 4)};
    for (std::size_t i = 0; i < names.size(); ++i) s.create(names[i], values[i]);
    auto refs = mountfs::parseSecretRefs("small;mid;large;source=max,target=/opt/max,mode=0400;"
                                         "source=small,target=again,uid=1000");
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    auto sealed = s.store.readMany(names);
    REQUIRE(sealed.has_value());
    const std::vector<std::size_t> which = {0, 1, 2, 3, 0};
    auto view = TmpfsView::build(std::move(*layout), SealedPayloads(*sealed, which), {}, platform::kernelFeatures());
    REQUIRE_MESSAGE(view.has_value(), (view ? "" : view.error().message));

    AttachedContainer attached(**view);
    FakeContainer& c = attached.c;
    const char* paths[] = {"/run/secrets/small", "/run/secrets/mid", "/run/secrets/large", "/opt/max",
                           "/run/secrets/again"};
    for (std::size_t i = 0; i < which.size(); ++i) {
        CAPTURE(paths[i]);
        auto got = readInside(c, paths[i]);
        REQUIRE(got.has_value());
        const bool same = *got == values[which[i]];
        CHECK_MESSAGE(same, "the file's content differs from the stored value");
    }
    auto again = statInside(c, "/run/secrets/again");
    REQUIRE(again.has_value());
    CHECK(again->uid == 1000);
    auto max = statInside(c, "/opt/max");
    REQUIRE(max.has_value());
    CHECK(max->mode == 0400);
}

TEST_CASE("a record tampered mid-task fails the build with one line and leaves no plaintext") {
    Store s;
    const std::vector<std::string> names = {"s1", "s2", "s3", "s4", "s5"};
    for (std::size_t i = 0; i < names.size(); ++i) s.create(names[i], patterned(100000, static_cast<unsigned>(i)));
    // Flip one ciphertext byte of s3: its header still parses, so the store
    // reads every record, and the tag check fails only once s3's 100000
    // bytes of unauthenticated plaintext went into its file.
    tamper(s, "s3");
    auto refs = mountfs::parseSecretRefs("s1;s2;s3;s4;s5");
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    const std::vector<std::string> files = filesOf(*layout);
    auto sealed = s.store.readMany(names);
    REQUIRE(sealed.has_value());
    const SealedPayloads payloads(*sealed, {0, 1, 2, 3, 4});
    const Spy spy(payloads, 2, files);

    auto view = TmpfsView::build(std::move(*layout), spy, {}, platform::kernelFeatures());
    REQUIRE(!view.has_value());
    CHECK(view.error().message == "secret \"s3\": cannot decrypt (corrupt or tampered)");

    // While it was built: s1 and s2 complete, s3 written in full before its
    // tag failed.
    REQUIRE(spy.held.size() == 3);
    CHECK(spy.sizesThen == std::vector<off_t>{100000, 100000, 100000});
    // Now: every one of them overwritten (the pages that held it hold
    // zeros), truncated and unlinked; the view's directory empty, nothing of
    // s4 or s5 ever created.
    for (std::size_t i = 0; i < spy.held.size(); ++i) {
        CAPTURE(i);
        struct stat st {};
        REQUIRE(::fstat(spy.held[i].get(), &st) == 0);
        CHECK(st.st_size == 0);
        CHECK(st.st_nlink == 0);
        char byte = 0;
        CHECK(::pread(spy.held[i].get(), &byte, 1, 0) == 0);
        const bool held = spy.pinned[i].then() == patterned(100000, static_cast<unsigned>(i));
        CHECK_MESSAGE(held, "the pinned pages did not hold the value");
        CHECK_MESSAGE(spy.pinned[i].zeroedNow(), "the pages that held the value were not overwritten");
    }
    CHECK(entriesOf(spy.root.get(), "dir").empty());
}

TEST_CASE("a missing record fails before the view is made") {
    Store s;
    s.create("here", patterned(64, 9));
    const std::vector<std::string> names = {"here", "gone"};
    auto sealed = s.store.readMany(names);
    REQUIRE(!sealed.has_value());
    CHECK(sealed.error().message == "secret \"gone\" does not exist");
}

TEST_CASE("a large task is filled on two threads: exactly the bytes; a failure in the second half leaves nothing") {
    Store s;
    // 10 x 500 KiB: over the 2 MiB where the view takes a second thread.
    const StoredTask t = storeTask(s, "big", 10, 500 * 1024, 20);
    const auto& [names, values, refs, which] = t;
    {
        auto layout = mountfs::planView(refs);
        REQUIRE(layout.has_value());
        auto sealed = s.store.readMany(names);
        REQUIRE(sealed.has_value());
        auto view =
            TmpfsView::build(std::move(*layout), SealedPayloads(*sealed, which), {}, platform::kernelFeatures());
        REQUIRE_MESSAGE(view.has_value(), (view ? "" : view.error().message));
        AttachedContainer attached(**view);
        FakeContainer& c = attached.c;
        for (std::size_t i = 0; i < names.size(); ++i) {
            CAPTURE(names[i]);
            auto got = readInside(c, "/run/secrets/" + names[i]);
            REQUIRE(got.has_value());
            const bool same = *got == values[i];
            CHECK_MESSAGE(same, "the file's content differs from the stored value");
        }
    }

    // big7 tampered: the second thread fails on it, after its plaintext went
    // into the file; the first thread stops; nothing is left.
    CHECK(failInSecondThread(s, t, 7) == std::vector<off_t>{500 * 1024});
}

TEST_CASE("payloads already in memory (cluster mode) past 2 MiB: two threads, exactly the bytes") {
    std::vector<std::string> values;
    std::vector<mountfs::Bytes> payloads;
    std::string annotation;
    for (unsigned i = 0; i < 6; ++i) {
        values.push_back(patterned(500 * 1024, 40 + i));
        annotation += (i ? ";" : "") + std::string("mem") + std::to_string(i);
    }
    for (const auto& v : values) payloads.push_back(bytes(v));
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    auto view = TmpfsView::build(std::move(*layout), payloads, {}, platform::kernelFeatures());
    REQUIRE_MESSAGE(view.has_value(), (view ? "" : view.error().message));
    AttachedContainer attached(**view);
    FakeContainer& c = attached.c;
    for (std::size_t i = 0; i < values.size(); ++i) {
        auto got = readInside(c, "/run/secrets/mem" + std::to_string(i));
        REQUIRE(got.has_value());
        const bool same = *got == values[i];
        CHECK_MESSAGE(same, "the file's content differs from the payload");
    }
}

TEST_CASE("200 small secrets: filled and flushed on two threads, each file exact, then zeroed and unlinked") {
    Store s;
    // 200 x 64 B: few bytes, but enough files for a second thread (the cost
    // of a file counts, not only its bytes), to fill and to flush.
    const StoredTask t = storeTask(s, "s", 200, 64, 60);
    const auto& [names, values, refs, which] = t;
    {
        auto layout = mountfs::planView(refs);
        REQUIRE(layout.has_value());
        const std::vector<std::string> files = filesOf(*layout);
        auto sealed = s.store.readMany(names);
        REQUIRE(sealed.has_value());
        auto view =
            TmpfsView::build(std::move(*layout), SealedPayloads(*sealed, which), {}, platform::kernelFeatures());
        REQUIRE_MESSAGE(view.has_value(), (view ? "" : view.error().message));
        const UniqueFd root = findViewRoot();
        std::vector<UniqueFd> held;
        std::vector<PinnedPages> pinned;
        for (std::size_t i = 0; i < files.size(); ++i) {
            CAPTURE(files[i]);
            held.emplace_back(::openat(root.get(), files[i].c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            REQUIRE(held.back());
            std::string got(values[i].size() + 1, '\0');
            const ssize_t n = ::pread(held.back().get(), got.data(), got.size(), 0);
            got.resize(static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
            const bool same = got == values[i];
            CHECK_MESSAGE(same, "the file's content differs from the stored value");
            pinned.emplace_back(held.back().get());
            const bool pinnedSame = pinned.back().then() == values[i];
            CHECK_MESSAGE(pinnedSame, "the pinned pages differ from the stored value");
        }
        REQUIRE((*view)->flush().has_value());
        for (std::size_t i = 0; i < held.size(); ++i) {
            CAPTURE(files[i]);
            struct stat st {};
            REQUIRE(::fstat(held[i].get(), &st) == 0);
            CHECK(st.st_size == 0);
            CHECK(st.st_nlink == 0);
            CHECK_MESSAGE(pinned[i].zeroedNow(), "the pages that held the value were not overwritten");
        }
        CHECK(entriesOf(root.get(), "dir").empty());
    }

    // s150 tampered: the second thread fails on it; nothing is left.
    CHECK(failInSecondThread(s, t, 150) == std::vector<off_t>{64});
}

namespace {

// The caps of a view's tmpfs, as the kernel reports them (statfs of its root).
struct Caps {
    unsigned long long bytes = 0, inodes = 0;
};
Caps capsOf(int root) {
    struct statfs sfs {};
    REQUIRE(::fstatfs(root, &sfs) == 0);
    return {static_cast<unsigned long long>(sfs.f_blocks) * sfs.f_bsize, static_cast<unsigned long long>(sfs.f_files)};
}

// What a failed build could leave behind in this process: an fd (of the
// view's tmpfs or a clone of it), a tmpfs of ours mounted somewhere.
std::size_t openFds() {
    std::size_t count = 0;
    DIR* fds = ::opendir("/proc/self/fd");
    REQUIRE(fds != nullptr);
    while (const dirent* e = ::readdir(fds)) count += e->d_name[0] != '.';
    ::closedir(fds);
    return count - 1;  // the listing's own
}
std::size_t ourMounts() {
    std::ifstream in("/proc/self/mountinfo");
    std::size_t count = 0;
    for (std::string line; std::getline(in, line);) count += line.find(" - tmpfs secretshim ") != std::string::npos;
    return count;
}

// Announces `announced` bytes for each payload; the last one then writes on
// past that, in 64 KiB pieces, until the view refuses a piece (or 64 MiB,
// far past any cap). At that moment it notes the view's caps and the
// system's Shmem, and pins the pages of its file.
class Overflowing final : public mountfs::PayloadSource {
public:
    Overflowing(std::size_t count, std::size_t announced, std::string lastFile)
        : count_(count), value_(patterned(announced, 70)), lastFile_(std::move(lastFile)) {}
    std::size_t count() const override { return count_; }
    std::size_t size(std::size_t) const override { return value_.size(); }
    Result<void> produce(std::size_t index, mountfs::PayloadSink& sink) const override {
        if (index + 1 < count_) return sink.write(bytes(value_));
        const std::string piece = patterned(64 << 10, 71);
        Result<void> ok;
        while (written < (std::size_t{64} << 20) && (ok = sink.write(bytes(piece)))) written += piece.size();
        if (ok) return fail("the view took 64 MiB past what was announced");
        const UniqueFd root = findViewRoot();
        caps = capsOf(root.get());
        shmemAtCap = shmemKiB();
        UniqueFd fd(::openat(root.get(), lastFile_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        REQUIRE(fd);
        pinned.emplace(fd.get());
        return ok;
    }
    mutable std::size_t written = 0;  // by the last one, before it was refused
    mutable Caps caps;
    mutable long shmemAtCap = 0;
    mutable std::optional<PinnedPages> pinned;

private:
    std::size_t count_;
    std::string value_;
    std::string lastFile_;
};

// Writes each payload as announced; while the second one is written, makes
// empty files in the view until the tmpfs refuses one, and pins the pages
// of the first one's file.
class Crowding final : public mountfs::PayloadSource {
public:
    Crowding(std::size_t count, std::string firstFile) : count_(count), firstFile_(std::move(firstFile)) {}
    std::size_t count() const override { return count_; }
    std::size_t size(std::size_t) const override { return value_.size(); }
    Result<void> produce(std::size_t index, mountfs::PayloadSink& sink) const override {
        if (index == 1) {
            const UniqueFd root = findViewRoot();
            caps = capsOf(root.get());
            for (; made < 100000; ++made) {
                const std::string name = "crowd" + std::to_string(made);
                UniqueFd fd(::openat(root.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
                if (!fd) {
                    refusedWith = errno;
                    break;
                }
            }
            UniqueFd first(::openat(root.get(), firstFile_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            REQUIRE(first);
            pinned.emplace(first.get());
        }
        return sink.write(bytes(value_));
    }
    const std::string value_ = patterned(3000, 80);
    mutable Caps caps;
    mutable std::size_t made = 0;  // empty files the view took
    mutable int refusedWith = 0;
    mutable std::optional<PinnedPages> pinned;

private:
    std::size_t count_;
    std::string firstFile_;
};

}  // namespace

TEST_CASE("a source that writes past what it announced hits the view's size cap: one line naming it, nothing left") {
    // Six values announced at 400 KiB: the view is sized for them and one
    // update (about 2.9 MiB); the last one writes on until it is refused.
    auto refs = mountfs::parseSecretRefs("over0;over1;over2;over3;over4;over5");
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    const Overflowing source(6, 400 << 10, layout->entries[5].file);
    const long before = shmemKiB();
    const std::size_t fds = openFds(), mounts = ourMounts();

    auto view = TmpfsView::build(std::move(*layout), source, {}, platform::kernelFeatures());
    REQUIRE(!view.has_value());
    REQUIRE(source.caps.bytes > 0);
    CHECK(view.error().message == "secret \"over5\": writing a secret file: the view's tmpfs reached its size cap of " +
                                      std::to_string(source.caps.bytes) + " bytes: No space left on device");
    CHECK(view.error().code == ENOSPC);
    // It got past what it announced, and only up to the cap.
    CHECK(source.written > std::size_t{400} << 10);
    CHECK(5 * (std::size_t{400} << 10) + source.written <= source.caps.bytes);
    CHECK(source.shmemAtCap - before >= 2000);  // the view held about 2.9 MiB then

    // Nothing left: the pages that held the last value zeroed, every fd of
    // the view closed (its tmpfs freed), nothing mounted.
    REQUIRE(source.pinned.has_value());
    CHECK_MESSAGE(source.pinned->zeroedNow(), "the pages past the cap were not overwritten");
    source.pinned.reset();
    CHECK(openFds() == fds);
    CHECK(ourMounts() == mounts);
    CHECK(shmemKiB() - before < 1024);
}

// The view's inode cap counts the files and directories of its layout (and
// room for an update): nothing the agent writes makes more. Something that
// did would hit the cap; a source stands in for it here, filling the free
// inodes while the view is being built.
TEST_CASE("files past the view's inode cap are refused: one line naming it, nothing left") {
    auto refs = mountfs::parseSecretRefs("a;b;c");
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    const Crowding source(3, layout->entries[0].file);
    const std::size_t fds = openFds(), mounts = ourMounts();

    auto view = TmpfsView::build(std::move(*layout), source, {}, platform::kernelFeatures());
    REQUIRE(!view.has_value());
    // The cap is the layout's count, not tmpfs's default (half the RAM's pages).
    CHECK(source.refusedWith == ENOSPC);
    CHECK(source.caps.inodes > 3);
    CHECK(source.caps.inodes < 20);
    CHECK(source.made > 0);
    CHECK(source.made < source.caps.inodes);
    CHECK(view.error().message == "creating the file for secret \"c\": the view's tmpfs reached its inode cap of " +
                                      std::to_string(source.caps.inodes) +
                                      " files and directories: No space left on device");
    CHECK(view.error().code == ENOSPC);

    REQUIRE(source.pinned.has_value());
    CHECK_MESSAGE(source.pinned->zeroedNow(), "the first value's pages were not overwritten");
    source.pinned.reset();
    CHECK(openFds() == fds);
    CHECK(ourMounts() == mounts);
}
