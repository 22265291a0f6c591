// Tests for the Windows secrets view (platform/windows/symlink_view) against
// the fake file system, which has the links and ACLs wine lacks: layout,
// link texts, the DACL applied, refusal of reparse points placed by the
// image, rollback, atomic update and idempotent flush.
#include <doctest/doctest.h>

#include <windows.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "mountfs/windows_target.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "platform/windows/symlink_view.hpp"
#include "tests/windows/fake_win_fs.hpp"
#include "tests/windows/test_support.hpp"

using namespace secretshim;
using namespace secretshim::platform;
using namespace secretshim::testing;
using Kind = FakeWinFs::Kind;

namespace {

const std::wstring kRoot = L"\\\\?\\C:\\ctr";
const std::wstring kInternal = kRoot + L"\\ProgramData\\Docker\\internal\\secrets";
const std::wstring kSecrets = kRoot + L"\\ProgramData\\Docker\\secrets";
// Markers stand in for secret values; they are compared in code only.
const std::string kMarkerA = "marker-a-value";
const std::string kMarkerB = "marker-b-value-longer";
const std::string kMarkerC = "marker-c";

mountfs::ContainerHandle container() { return mountfs::ContainerHandle{-1, "C:\\ctr"}; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

struct Fixture {
    FakeWinFs fs;
    Fixture() { fs.addDirectory(kRoot); }
    ~Fixture() {
        for (const std::string& v : fs.violations()) FAIL_CHECK(v);
    }

    Result<std::unique_ptr<SymlinkView>> build(const std::string& annotation,
                                               const std::vector<std::string>& payloads) {
        auto refs = mountfs::parseWindowsSecretRefs(annotation);
        REQUIRE(refs.has_value());
        auto layout = mountfs::planWindowsView(*refs);
        REQUIRE(layout.has_value());
        std::vector<mountfs::Bytes> bytes;
        for (const std::string& p : payloads) bytes.push_back(bytesOf(p));
        return SymlinkView::build(std::move(*layout), bytes, {}, fs);
    }

    std::unique_ptr<SymlinkView> attached(const std::string& annotation, const std::vector<std::string>& payloads) {
        auto view = build(annotation, payloads);
        if (!view) FAIL_CHECK(view.error().message);
        REQUIRE(view.has_value());
        auto ok = (*view)->attach(container());
        if (!ok) FAIL_CHECK(ok.error().message);
        REQUIRE(ok.has_value());
        return std::move(*view);
    }

    bool holds(const std::wstring& path, const std::string& marker) const {
        auto c = fs.content(path);
        return c && sameBytes(c->bytes, marker);
    }
    // "wipeFile <path>" was called before "deleteFile <path>".
    bool wipedBeforeDeleted(const std::wstring& path) const {
        const auto& calls = fs.calls();
        const std::string p = narrow(path);
        const auto wipe = std::find(calls.begin(), calls.end(), "wipeFile " + p);
        const auto del = std::find(calls.begin(), calls.end(), "deleteFile " + p);
        return wipe != calls.end() && del != calls.end() && wipe < del;
    }
};

}  // namespace

TEST_CASE("attach lays out the internal directory, the files and the links") {
    Fixture f;
    auto view = f.attached("db;source=api,target=C:\\app\\conf\\key", {kMarkerA, kMarkerB});

    CHECK(f.fs.kind(kInternal) == Kind::directory);
    CHECK(f.fs.sddl(kInternal) == kAdminsAndSystemSddl);
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0", L"1"});
    CHECK(f.holds(kInternal + L"\\0", kMarkerA));
    CHECK(f.holds(kInternal + L"\\1", kMarkerB));
    CHECK(f.fs.sddl(kInternal + L"\\0") == kAdminsAndSystemSddl);

    CHECK(f.fs.kind(kSecrets + L"\\db") == Kind::fileLink);
    CHECK(f.fs.linkText(kSecrets + L"\\db") == L"..\\internal\\secrets\\0");
    CHECK(f.fs.kind(kRoot + L"\\app\\conf\\key") == Kind::fileLink);
    CHECK(f.fs.linkText(kRoot + L"\\app\\conf\\key") == L"..\\..\\ProgramData\\Docker\\internal\\secrets\\1");
    // Parents of targets are plain directories inheriting their ACL.
    CHECK(f.fs.kind(kRoot + L"\\app\\conf") == Kind::directory);
    CHECK(f.fs.sddl(kRoot + L"\\app\\conf") == "");

    CHECK(view->layout().entries.size() == 2);
    CHECK(view->layout().entries[1].file == "C:\\ProgramData\\Docker\\internal\\secrets\\1");
}

TEST_CASE("two references to one secret get two files") {
    Fixture f;
    auto view = f.attached("db;source=db,target=C:\\app\\db", {kMarkerA, kMarkerA});
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0", L"1"});
    CHECK(f.fs.content(kInternal + L"\\0") != f.fs.content(kInternal + L"\\1"));
    CHECK(f.fs.linkText(kRoot + L"\\app\\db") == L"..\\ProgramData\\Docker\\internal\\secrets\\1");
}

TEST_CASE("build refuses what is not a Windows view") {
    Fixture f;
    SUBCASE("a layout planned for Linux") {
        auto refs = mountfs::parseSecretRefs("db");
        REQUIRE(refs.has_value());
        auto layout = mountfs::planView(*refs);
        REQUIRE(layout.has_value());
        auto view = SymlinkView::build(*layout, {bytesOf(kMarkerA)}, {}, f.fs);
        REQUIRE_FALSE(view.has_value());
        CHECK(contains(view.error().message, "names no drive"));
    }
    SUBCASE("a reference with uid, gid or mode") {
        mountfs::SecretRef ref{"db", "C:\\app\\db", 1000, 0, mountfs::kDefaultMode};
        mountfs::ViewLayout layout{{mountfs::ViewEntry{ref, mountfs::windowsInternalFile(0), false}}, {}};
        auto view = SymlinkView::build(layout, {bytesOf(kMarkerA)}, {}, f.fs);
        REQUIRE_FALSE(view.has_value());
        CHECK(view.error().message == "secret \"db\": uid, gid and mode are not supported on Windows");
    }
    SUBCASE("internal files named otherwise") {
        mountfs::SecretRef ref{"db", "C:\\app\\db", 0, 0, mountfs::kDefaultMode};
        mountfs::ViewLayout layout{{mountfs::ViewEntry{ref, "C:\\elsewhere\\0", false}}, {}};
        CHECK_FALSE(SymlinkView::build(layout, {bytesOf(kMarkerA)}, {}, f.fs).has_value());
    }
    SUBCASE("payloads that do not fit") {
        CHECK(contains(f.build("db", {}).error().message, "0 payloads for 1 references"));
        CHECK(contains(f.build("db", {""}).error().message, "secret \"db\" is empty"));
        CHECK(contains(f.build("db", {std::string(512001, 'x')}).error().message, "over the limit"));
    }
    CHECK(f.fs.size() == 1);  // nothing written
}

TEST_CASE("a reparse point above the internal directory is refused before anything is written") {
    Fixture f;
    f.fs.addDirectory(kRoot + L"\\ProgramData");
    f.fs.addDirectoryLink(kRoot + L"\\ProgramData\\Docker", L"C:\\Windows\\System32");
    auto view = f.build("db", {kMarkerA});
    REQUIRE(view.has_value());
    auto ok = (*view)->attach(container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(ok.error().message ==
          "attaching secrets: C:\\ProgramData\\Docker is a reparse point (a link or junction in the image); "
          "refusing to follow it");
    CHECK(f.fs.size() == 3);
    SUBCASE("the view is spent") {
        CHECK(contains((*view)->attach(container()).error().message, "flushed"));
        CHECK((*view)->flush().has_value());
    }
}

TEST_CASE("the internal directory itself may not be a link, a file or hold files") {
    Fixture f;
    f.fs.addDirectory(kRoot + L"\\ProgramData");
    f.fs.addDirectory(kRoot + L"\\ProgramData\\Docker");
    f.fs.addDirectory(kRoot + L"\\ProgramData\\Docker\\internal");
    std::string why;
    SUBCASE("a junction") {
        f.fs.addDirectoryLink(kInternal, L"C:\\Users\\Public");
        why = "is a reparse point";
    }
    SUBCASE("a file") {
        f.fs.addFile(kInternal, "image data");
        why = "is not a directory";
    }
    SUBCASE("a directory with a file from the image") {
        f.fs.addDirectory(kInternal);
        f.fs.addFile(kInternal + L"\\0", "image data");
        why = "is not empty";
    }
    const std::size_t before = f.fs.size();
    auto view = f.build("db", {kMarkerA});
    REQUIRE(view.has_value());
    auto ok = (*view)->attach(container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "C:\\ProgramData\\Docker\\internal\\secrets " + why));
    CHECK(f.fs.size() == before);
    // The image's own data is left as it was.
    if (auto c = f.fs.content(kInternal + L"\\0")) CHECK(sameBytes(c->bytes, "image data"));
    if (auto c = f.fs.content(kInternal)) CHECK(sameBytes(c->bytes, "image data"));
}

TEST_CASE("an empty internal directory in the image is reused with our DACL") {
    Fixture f;
    f.fs.addDirectory(kRoot + L"\\ProgramData");
    f.fs.addDirectory(kRoot + L"\\ProgramData\\Docker");
    f.fs.addDirectory(kRoot + L"\\ProgramData\\Docker\\internal");
    f.fs.addDirectory(kInternal);
    auto view = f.attached("db", {kMarkerA});
    CHECK(f.fs.sddl(kInternal) == kAdminsAndSystemSddl);
    CHECK(f.holds(kInternal + L"\\0", kMarkerA));
    REQUIRE(view->flush().has_value());
    CHECK_FALSE(f.fs.exists(kInternal));
}

TEST_CASE("a reparse point above a target fails attach and rolls back what was written") {
    Fixture f;
    f.fs.addDirectoryLink(kRoot + L"\\app", L"C:\\Windows");
    auto view = f.build("db;source=api,target=C:\\app\\key", {kMarkerA, kMarkerB});
    REQUIRE(view.has_value());
    auto ok = (*view)->attach(container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(ok.error().message ==
          "attaching secrets: secret \"api\" at \"C:\\app\\key\": C:\\app is a reparse point (a link or junction "
          "in the image); refusing to follow it");
    // The files were zeroed before they were deleted; the link made for db is gone.
    CHECK(f.wipedBeforeDeleted(kInternal + L"\\0"));
    CHECK(f.wipedBeforeDeleted(kInternal + L"\\1"));
    CHECK_FALSE(f.fs.exists(kInternal));
    CHECK_FALSE(f.fs.exists(kSecrets + L"\\db"));
    CHECK(f.fs.kind(kRoot + L"\\app") == Kind::directoryLink);
}

TEST_CASE("a target that exists in the image is refused and left alone") {
    Fixture f;
    f.fs.addDirectory(kRoot + L"\\app");
    f.fs.addFileLink(kRoot + L"\\app\\key", L"C:\\Windows\\win.ini");
    auto view = f.build("source=api,target=C:\\app\\key", {kMarkerB});
    REQUIRE(view.has_value());
    auto ok = (*view)->attach(container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "secret \"api\" at \"C:\\app\\key\": the target already exists in the image"));
    CHECK(f.fs.kind(kRoot + L"\\app\\key") == Kind::fileLink);
    CHECK(f.fs.linkText(kRoot + L"\\app\\key") == L"C:\\Windows\\win.ini");
    CHECK_FALSE(f.fs.exists(kInternal));
}

TEST_CASE("a failing link creation names the secret and removes earlier links") {
    Fixture f;
    f.fs.failNext("createSymlink", 1314, 1);  // ERROR_PRIVILEGE_NOT_HELD, on the second link
    auto view = f.build("db;api", {kMarkerA, kMarkerB});
    REQUIRE(view.has_value());
    auto ok = (*view)->attach(container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "secret \"api\" at \"C:\\ProgramData\\Docker\\secrets\\api\": fake createSymlink"));
    CHECK(ok.error().code == 1314);
    CHECK_FALSE(f.fs.exists(kSecrets + L"\\db"));
    CHECK_FALSE(f.fs.exists(kInternal));
}

TEST_CASE("a failing file write names the secret") {
    Fixture f;
    f.fs.failNext("createFile", 112);  // ERROR_DISK_FULL
    auto view = f.build("db", {kMarkerA});
    REQUIRE(view.has_value());
    auto ok = (*view)->attach(container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "attaching secrets: secret \"db\": fake createFile"));
    CHECK_FALSE(f.fs.exists(kInternal));
}

TEST_CASE("attach refuses a bad root, a second attach and an attach after flush") {
    Fixture f;
    auto view = f.build("db", {kMarkerA});
    REQUIRE(view.has_value());
    CHECK(contains((*view)->attach({-1, "relative"}).error().message, "not an absolute Windows path"));
    auto again = f.build("db", {kMarkerA});
    REQUIRE(again.has_value());
    REQUIRE((*again)->attach(container()).has_value());
    CHECK(contains((*again)->attach(container()).error().message, "already attached"));
    REQUIRE((*again)->flush().has_value());
    CHECK(contains((*again)->attach(container()).error().message, "flushed"));
}

TEST_CASE("update replaces a file in one rename and zeroes the old bytes") {
    Fixture f;
    auto view = f.attached("db;api", {kMarkerA, kMarkerB});
    // A second name for the old bytes, as a copy a process could have made.
    REQUIRE(f.fs.createHardLink(kRoot + L"\\spy", kInternal + L"\\0").has_value());

    REQUIRE(view->update(0, bytesOf(kMarkerC), container()).has_value());
    CHECK(f.holds(kInternal + L"\\0", kMarkerC));
    CHECK(f.holds(kInternal + L"\\1", kMarkerB));
    CHECK(f.fs.sddl(kInternal + L"\\0") == kAdminsAndSystemSddl);
    CHECK(allZero(f.fs.content(kRoot + L"\\spy")->bytes, kMarkerA.size()));
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0", L"1"});
    const auto& calls = f.fs.calls();
    CHECK(std::count(calls.begin(), calls.end(),
                     "replaceFile " + narrow(kInternal) + "\\0") == 1);
    CHECK(f.fs.kind(kSecrets + L"\\db") == Kind::fileLink);
}

TEST_CASE("a reader that opened the old file keeps reading the whole old value") {
    Fixture f;
    auto view = f.attached("db", {kMarkerA});
    auto reader = f.fs.openReader(kInternal + L"\\0", true);
    REQUIRE(reader);
    REQUIRE(view->update(0, bytesOf(kMarkerC), container()).has_value());
    CHECK(sameBytes(reader->read(), kMarkerA));
    CHECK(f.holds(kInternal + L"\\0", kMarkerC));
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0"});
}

TEST_CASE("an update blocked by a reader fails cleanly and keeps the old value") {
    Fixture f;
    auto view = f.attached("db", {kMarkerA});
    auto reader = f.fs.openReader(kInternal + L"\\0", false);  // no FILE_SHARE_DELETE
    auto ok = view->update(0, bytesOf(kMarkerC), container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "updating secret \"db\": fake replaceFile"));
    CHECK(ok.error().code == ERROR_SHARING_VIOLATION);
    CHECK(f.holds(kInternal + L"\\0", kMarkerA));
    CHECK(f.wipedBeforeDeleted(kInternal + L"\\0.new"));
    // The second name of the old bytes cannot go while the reader blocks
    // deletion; it names the live file, so the next update only unlinks it.
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0", L"0.old"});
    reader.reset();
    REQUIRE(view->update(0, bytesOf(kMarkerC), container()).has_value());
    CHECK(f.holds(kInternal + L"\\0", kMarkerC));
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0"});
}

TEST_CASE("update clears what a crash left and refuses what it cannot do") {
    Fixture f;
    auto view = f.attached("db", {kMarkerA});
    f.fs.addFile(kInternal + L"\\0.new", "half-written");
    f.fs.addFile(kInternal + L"\\0.old", "older");
    REQUIRE(view->update(0, bytesOf(kMarkerC), container()).has_value());
    CHECK(f.wipedBeforeDeleted(kInternal + L"\\0.new"));
    CHECK_FALSE(f.fs.exists(kInternal + L"\\0.old"));  // unlinked only: it may name the live file
    CHECK(f.fs.children(kInternal) == std::vector<std::wstring>{L"0"});
    CHECK(f.holds(kInternal + L"\\0", kMarkerC));

    CHECK(contains(view->update(1, bytesOf(kMarkerC), container()).error().message, "no reference 1"));
    CHECK(contains(view->update(0, bytesOf(""), container()).error().message, "is empty"));
    CHECK(contains(view->update(0, bytesOf(kMarkerC), {-1, "C:\\other"}).error().message, "another container"));
    CHECK(view->update(0, bytesOf(kMarkerA), {-1, ""}).has_value());  // the root is known

    auto unattached = f.build("db", {kMarkerA});
    REQUIRE(unattached.has_value());
    CHECK(contains((*unattached)->update(0, bytesOf(kMarkerC), container()).error().message, "not attached"));
}

TEST_CASE("update refuses an internal directory the container replaced by a junction") {
    Fixture f;
    auto view = f.attached("db", {kMarkerA});
    // What a container administrator could do while the task runs.
    REQUIRE(f.fs.replaceFile(kInternal + L"\\0", kRoot + L"\\moved").has_value());
    REQUIRE(f.fs.removeDirectory(kInternal).has_value());
    f.fs.addDirectoryLink(kInternal, L"C:\\Windows\\System32");
    auto ok = view->update(0, bytesOf(kMarkerC), container());
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "was replaced by a reparse point or a file"));
    auto flushed = view->flush();
    REQUIRE_FALSE(flushed.has_value());
    CHECK(contains(flushed.error().message, "wiping C:\\ProgramData\\Docker\\internal\\secrets"));
}

TEST_CASE("flush zeroes every file before deleting it, then removes the links and the directory") {
    Fixture f;
    auto view = f.attached("db;source=api,target=C:\\app\\key", {kMarkerA, kMarkerB});
    REQUIRE(f.fs.createHardLink(kRoot + L"\\spy", kInternal + L"\\1").has_value());
    auto reader = f.fs.openReader(kInternal + L"\\0", true);

    REQUIRE(view->flush().has_value());
    CHECK(f.wipedBeforeDeleted(kInternal + L"\\0"));
    CHECK(f.wipedBeforeDeleted(kInternal + L"\\1"));
    CHECK(allZero(f.fs.content(kRoot + L"\\spy")->bytes, kMarkerB.size()));
    CHECK(allZero(reader->read(), kMarkerA.size()));  // a process that still has it open reads zeros
    CHECK_FALSE(f.fs.exists(kInternal));
    CHECK_FALSE(f.fs.exists(kSecrets + L"\\db"));
    CHECK_FALSE(f.fs.exists(kRoot + L"\\app\\key"));
    // Parents stay, as Docker leaves them.
    CHECK(f.fs.kind(kSecrets) == Kind::directory);
    CHECK(f.fs.kind(kRoot + L"\\app") == Kind::directory);

    SUBCASE("flush is idempotent") {
        const std::size_t size = f.fs.size();
        CHECK(view->flush().has_value());
        CHECK(view->flush().has_value());
        CHECK(f.fs.size() == size);
        CHECK(contains(view->update(0, bytesOf(kMarkerC), container()).error().message, "flushed"));
    }
}

TEST_CASE("flush of a view never attached writes nothing") {
    Fixture f;
    auto view = f.build("db", {kMarkerA});
    REQUIRE(view.has_value());
    CHECK((*view)->flush().has_value());
    CHECK(f.fs.size() == 1);
    CHECK(f.fs.calls().empty());
}

TEST_CASE("after a crash an adopted view flushes what is left, leftovers included") {
    Fixture f;
    {
        auto view = f.attached("db;source=api,target=C:\\app\\key", {kMarkerA, kMarkerB});
        // The agent dies here: the view goes without a flush.
    }
    CHECK(f.holds(kInternal + L"\\0", kMarkerA));
    f.fs.addFile(kInternal + L"\\1.new", "half-written");
    f.fs.addFile(kInternal + L"\\copy.txt", "a copy made in the container");
    f.fs.addFileLink(kInternal + L"\\link", L"C:\\Windows\\win.ini");

    auto refs = mountfs::parseWindowsSecretRefs("db;source=api,target=C:\\app\\key");
    REQUIRE(refs.has_value());
    auto adopted = SymlinkView::adopt(*mountfs::planWindowsView(*refs), container(), {}, f.fs);
    REQUIRE(adopted.has_value());
    REQUIRE((*adopted)->flush().has_value());
    for (const wchar_t* name : {L"\\0", L"\\1", L"\\1.new", L"\\copy.txt"})
        CHECK(f.wipedBeforeDeleted(kInternal + name));
    CHECK_FALSE(f.fs.exists(kInternal));
    CHECK_FALSE(f.fs.exists(kSecrets + L"\\db"));
    CHECK_FALSE(f.fs.exists(kRoot + L"\\app\\key"));

    SUBCASE("and once more after a crash in the middle of the flush") {
        auto again = SymlinkView::adopt(*mountfs::planWindowsView(*refs), container(), {}, f.fs);
        REQUIRE(again.has_value());
        CHECK((*again)->flush().has_value());
    }
}

TEST_CASE("flush leaves what the container put in place of a link and never follows a junction") {
    Fixture f;
    auto view = f.attached("db;source=api,target=C:\\app\\key", {kMarkerA, kMarkerB});
    REQUIRE(f.fs.deleteFile(kSecrets + L"\\db").has_value());
    f.fs.addFile(kSecrets + L"\\db", "the container's own file");
    REQUIRE(f.fs.deleteFile(kRoot + L"\\app\\key").has_value());
    REQUIRE(f.fs.removeDirectory(kRoot + L"\\app").has_value());
    f.fs.addDirectoryLink(kRoot + L"\\app", L"C:\\Windows");

    REQUIRE(view->flush().has_value());
    CHECK(f.fs.kind(kSecrets + L"\\db") == Kind::file);
    CHECK(f.fs.kind(kRoot + L"\\app") == Kind::directoryLink);
    CHECK_FALSE(f.fs.exists(kInternal));
}

TEST_CASE("a flush that cannot delete a file reports it and can be re-run") {
    Fixture f;
    auto view = f.attached("db", {kMarkerA});
    f.fs.failNext("deleteFile", ERROR_SHARING_VIOLATION);
    auto ok = view->flush();
    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "wiping C:\\ProgramData\\Docker\\internal\\secrets: fake deleteFile"));
    CHECK(allZero(f.fs.content(kInternal + L"\\0")->bytes, kMarkerA.size()));
    REQUIRE(view->flush().has_value());
    CHECK_FALSE(f.fs.exists(kInternal));
}
