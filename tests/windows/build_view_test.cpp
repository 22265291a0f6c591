// End-to-end tests of the Windows view over the real file system under
// wine: the files really written, replaced and wiped in a temporary
// container root. wine 8 creates no symbolic links, so a full attach is run
// with links recorded instead of created (LinklessFs); a view over the
// plain RealWinFs is checked to refuse rather than start a container
// without its links.
#include <doctest/doctest.h>

#include <windows.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "mountfs/windows_target.hpp"
#include "platform/windows/real_win_fs.hpp"
#include "platform/windows/symlink_view.hpp"
#include "tests/windows/test_support.hpp"

using namespace secretshim;
using namespace secretshim::platform;
using namespace secretshim::testing;

namespace {

const std::string kMarkerA = "marker-e2e-a";
const std::string kMarkerB = "marker-e2e-b-longer";
const std::string kMarkerC = "marker-e2e-c";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The real calls, except that a link is recorded (its path and text)
// instead of created: what wine cannot do.
class LinklessFs : public RealWinFs {
public:
    Result<void> createSymlink(const std::wstring& link, const std::wstring& text) override {
        links.emplace_back(link, text);
        return {};
    }
    std::vector<std::pair<std::wstring, std::wstring>> links;
};

mountfs::ViewLayout planned(const std::string& annotation) {
    auto refs = mountfs::parseWindowsSecretRefs(annotation);
    REQUIRE(refs.has_value());
    auto layout = mountfs::planWindowsView(*refs);
    REQUIRE(layout.has_value());
    return std::move(*layout);
}

}  // namespace

TEST_CASE("attach, update and flush on real files") {
    TempDir root(L"e2e");
    const std::wstring internal = root.path() + L"\\ProgramData\\Docker\\internal\\secrets";
    const mountfs::ContainerHandle container{-1, root.plain()};
    LinklessFs fs;
    auto view = SymlinkView::build(planned("db;source=api,target=C:\\app\\key"),
                                   {bytesOf(kMarkerA), bytesOf(kMarkerB)}, {}, fs);
    REQUIRE(view.has_value());
    auto attached = (*view)->attach(container);
    if (!attached) FAIL_CHECK(attached.error().message);
    REQUIRE(attached.has_value());

    CHECK(sameBytes(readFile(internal + L"\\0"), kMarkerA));
    CHECK(sameBytes(readFile(internal + L"\\1"), kMarkerB));
    CHECK(pathExists(root.path() + L"\\ProgramData\\Docker\\secrets"));  // a target's parent
    CHECK(pathExists(root.path() + L"\\app"));
    REQUIRE(fs.links.size() == 2);
    CHECK(fs.links[0].first == root.path() + L"\\ProgramData\\Docker\\secrets\\db");
    CHECK(fs.links[0].second == L"..\\internal\\secrets\\0");
    CHECK(fs.links[1].first == root.path() + L"\\app\\key");
    CHECK(fs.links[1].second == L"..\\ProgramData\\Docker\\internal\\secrets\\1");

    // A second name for the old bytes, to see them zeroed.
    REQUIRE(::CreateHardLinkW((root.path() + L"\\spy").c_str(), (internal + L"\\0").c_str(), nullptr));
    REQUIRE((*view)->update(0, bytesOf(kMarkerC), container).has_value());
    CHECK(sameBytes(readFile(internal + L"\\0"), kMarkerC));
    CHECK(allZero(readFile(root.path() + L"\\spy"), kMarkerA.size()));
    CHECK_FALSE(pathExists(internal + L"\\0.new"));
    CHECK_FALSE(pathExists(internal + L"\\0.old"));

    REQUIRE(::CreateHardLinkW((root.path() + L"\\spy1").c_str(), (internal + L"\\1").c_str(), nullptr));
    REQUIRE((*view)->flush().has_value());
    CHECK(allZero(readFile(root.path() + L"\\spy1"), kMarkerB.size()));
    CHECK_FALSE(pathExists(internal));
    CHECK(pathExists(root.path() + L"\\ProgramData\\Docker\\internal"));
    CHECK((*view)->flush().has_value());
}

TEST_CASE("after a crash an adopted view wipes the real files, leftovers included") {
    TempDir root(L"adopt");
    const std::wstring internal = root.path() + L"\\ProgramData\\Docker\\internal\\secrets";
    const mountfs::ContainerHandle container{-1, root.plain()};
    LinklessFs fs;
    {
        auto view = SymlinkView::build(planned("db"), {bytesOf(kMarkerA)}, {}, fs);
        REQUIRE(view.has_value());
        REQUIRE((*view)->attach(container).has_value());
    }  // the agent dies without flushing
    REQUIRE(writeFile(internal + L"\\0.new", kMarkerC));
    REQUIRE(::CreateHardLinkW((root.path() + L"\\spy").c_str(), (internal + L"\\0.new").c_str(), nullptr));

    auto adopted = SymlinkView::adopt(planned("db"), container, {}, fs);
    REQUIRE(adopted.has_value());
    REQUIRE((*adopted)->flush().has_value());
    CHECK_FALSE(pathExists(internal));
    CHECK(allZero(readFile(root.path() + L"\\spy"), kMarkerC.size()));
}

TEST_CASE("a view over the real file system refuses to attach where symbolic links are not created, leaving nothing") {
    TempDir root(L"buildview");
    RealWinFs fs;
    auto view = SymlinkView::build(planned("db"), {bytesOf(kMarkerA)}, {}, fs);
    REQUIRE(view.has_value());
    auto attached = (*view)->attach({-1, root.plain()});
    if (runningUnderWine()) {
        REQUIRE_FALSE(attached.has_value());
        CHECK(contains(attached.error().message, "symbolic links are not supported here"));
        CHECK_FALSE(pathExists(root.path() + L"\\ProgramData\\Docker\\internal\\secrets"));
        MESSAGE("wine 8 creates no symbolic links: attach is checked to refuse and roll back");
    } else {
        REQUIRE(attached.has_value());
        CHECK(sameBytes(readFile(root.path() + L"\\ProgramData\\Docker\\secrets\\db"), kMarkerA));
        REQUIRE((*view)->flush().has_value());
        CHECK_FALSE(pathExists(root.path() + L"\\ProgramData\\Docker\\secrets\\db"));
    }
}

TEST_CASE("an image whose ProgramData leads outside the root gets nothing written") {
    const char* fixture = std::getenv("SECRETSHIM_HOSTILE_DIR");
    if (fixture == nullptr) {
        FAIL_CHECK("SECRETSHIM_HOSTILE_DIR is not set (meson test sets it)");
        return;
    }
    const std::string dir = fixture;
    const std::wstring outside = L"\\\\?\\" + std::wstring(dir.begin(), dir.end()) + L"\\outside";
    clearDirectory(outside);  // the fixture is made once, at configure time
    LinklessFs fs;
    auto view = SymlinkView::build(planned("db"), {bytesOf(kMarkerA)}, {}, fs);
    REQUIRE(view.has_value());
    auto attached = (*view)->attach({-1, dir + "\\root"});
    REQUIRE_FALSE(attached.has_value());
    CHECK(attached.error().message ==
          "attaching secrets: C:\\ProgramData is a reparse point (a link or junction in the image); refusing to "
          "follow it");
    // The directory the link points at stays empty.
    WIN32_FIND_DATAW data{};
    HANDLE find = ::FindFirstFileW((outside + L"\\*").c_str(), &data);
    REQUIRE(find != INVALID_HANDLE_VALUE);
    int entries = 0;
    do {
        const std::wstring name = data.cFileName;
        if (name != L"." && name != L"..") ++entries;
    } while (::FindNextFileW(find, &data));
    ::FindClose(find);
    CHECK(entries == 0);
    CHECK(fs.links.empty());
}
