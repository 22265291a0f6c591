// Tests for resolving paths inside a container's filesystem from the host
// (platform/windows/container_path), against the fake file system.
#include <doctest/doctest.h>

#include <string>

#include "platform/windows/container_path.hpp"
#include "tests/windows/fake_win_fs.hpp"

using namespace secretshim;
using namespace secretshim::platform;
using namespace secretshim::testing;

namespace {

const std::wstring kRoot = L"\\\\?\\C:\\ctr";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a container root becomes a \\\\?\\ path without a trailing backslash") {
    CHECK(hostRoot("C:\\ctr").value_or(L"") == L"\\\\?\\C:\\ctr");
    CHECK(hostRoot("C:\\ctr\\").value_or(L"") == L"\\\\?\\C:\\ctr");
    CHECK(hostRoot("C:/ProgramData/docker/windowsfilter/abc/").value_or(L"") ==
          L"\\\\?\\C:\\ProgramData\\docker\\windowsfilter\\abc");
    CHECK(hostRoot("\\\\?\\Volume{0a1b}\\").value_or(L"") == L"\\\\?\\Volume{0a1b}");
    CHECK(hostRoot("Z:\\tmp\\x").value_or(L"") == L"\\\\?\\Z:\\tmp\\x");

    for (const char* bad : {"", "ctr", "C:ctr", "\\ctr", "\\\\server\\share", "C:\\a\\..\\b", "C:\\a\\.\\b",
                            "C:\\a\\\\b", "\\\\?\\", "\\\\?\\C:\\a\\..", "C:\\\xFF"}) {
        CAPTURE(bad);
        CHECK_FALSE(hostRoot(bad).has_value());
    }
}

TEST_CASE("a container path maps below the root") {
    CHECK(hostPath(kRoot, "C:\\ProgramData\\Docker\\secrets\\db").value_or(L"") ==
          L"\\\\?\\C:\\ctr\\ProgramData\\Docker\\secrets\\db");
    CHECK(hostPath(kRoot, "C:\\m\xC3\xB6").value_or(L"") == L"\\\\?\\C:\\ctr\\m\u00F6");
}

TEST_CASE("resolving creates missing parents and pins every checked one") {
    FakeWinFs fs;
    fs.addDirectory(kRoot);
    fs.addDirectory(kRoot + L"\\app");
    auto r = resolveInRoot(fs, kRoot, "C:\\app\\conf\\deep\\pw", true);
    REQUIRE(r.has_value());
    CHECK(r->host == kRoot + L"\\app\\conf\\deep\\pw");
    CHECK(r->parentsExist);
    CHECK(r->pins.size() == 4);  // the root, app, conf, deep (the fake's pins are empty handles)
    CHECK(fs.kind(kRoot + L"\\app\\conf\\deep") == FakeWinFs::Kind::directory);
    CHECK(fs.sddl(kRoot + L"\\app\\conf") == "");  // inherited
    CHECK_FALSE(fs.exists(kRoot + L"\\app\\conf\\deep\\pw"));
    CHECK(fs.violations().empty());
}

TEST_CASE("without creation a missing parent is reported, not an error") {
    FakeWinFs fs;
    fs.addDirectory(kRoot);
    auto r = resolveInRoot(fs, kRoot, "C:\\app\\conf\\pw", false);
    REQUIRE(r.has_value());
    CHECK_FALSE(r->parentsExist);
    CHECK(r->host == kRoot + L"\\app\\conf\\pw");
    CHECK(fs.size() == 1);
}

TEST_CASE("a reparse point placed by the image is refused, never followed") {
    FakeWinFs fs;
    fs.addDirectory(kRoot);
    fs.addDirectory(kRoot + L"\\ProgramData");
    fs.addDirectoryLink(kRoot + L"\\ProgramData\\Docker", L"C:\\Windows\\System32");
    for (bool create : {true, false}) {
        auto r = resolveInRoot(fs, kRoot, "C:\\ProgramData\\Docker\\secrets\\db", create);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message ==
              "C:\\ProgramData\\Docker is a reparse point (a link or junction in the image); refusing to follow it");
    }
    SUBCASE("a file link on the way too") {
        fs.addDirectory(kRoot + L"\\app");
        fs.addFileLink(kRoot + L"\\app\\conf", L"C:\\Windows");
        auto r = resolveInRoot(fs, kRoot, "C:\\app\\conf\\pw", true);
        REQUIRE_FALSE(r.has_value());
        CHECK(contains(r.error().message, "C:\\app\\conf is a reparse point"));
    }
    CHECK(fs.violations().empty());
}

TEST_CASE("a file on the way is refused") {
    FakeWinFs fs;
    fs.addDirectory(kRoot);
    fs.addFile(kRoot + L"\\app", "x");
    auto r = resolveInRoot(fs, kRoot, "C:\\app\\pw", true);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "C:\\app is not a directory");
}

TEST_CASE("the root must be a directory; a mount point there is the runtime's") {
    FakeWinFs fs;
    auto missing = resolveInRoot(fs, kRoot, "C:\\pw", true);
    REQUIRE_FALSE(missing.has_value());
    CHECK(contains(missing.error().message, "root is not a directory"));

    fs.addDirectoryLink(kRoot, L"\\\\?\\Volume{0a1b}\\");
    CHECK(resolveInRoot(fs, kRoot, "C:\\pw", true).has_value());
}

TEST_CASE("a failure to create a parent names it") {
    FakeWinFs fs;
    fs.addDirectory(kRoot);
    fs.failNext("createDirectory", 5);  // ERROR_ACCESS_DENIED
    auto r = resolveInRoot(fs, kRoot, "C:\\app\\pw", true);
    REQUIRE_FALSE(r.has_value());
    CHECK(contains(r.error().message, "creating C:\\app: "));
    CHECK(r.error().code == 5);
}
