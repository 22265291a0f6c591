// Tests for Windows secret references and their layout (mountfs/windows_target).
// Platform-neutral: built for Linux and, in the Windows build, run under wine.
#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mountfs/windows_target.hpp"

using namespace secretshim;
using namespace secretshim::mountfs;

namespace {

std::string cleaned(std::string_view raw, std::string_view source = "db") {
    const auto r = cleanWindowsTarget(raw, source);
    if (!r) FAIL_CHECK("unexpected error: " << r.error().message);
    REQUIRE(r.has_value());
    return *r;
}

// The reason a target is refused (the message without "target "<raw>" ").
std::string refusal(std::string_view raw, std::string_view source = "db") {
    const auto r = cleanWindowsTarget(raw, source);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 0);
    CHECK(r.error().message.find('\n') == std::string::npos);
    return r.error().message;
}

SecretRef parsed(std::string_view spec) {
    const auto r = parseWindowsSecretRef(spec);
    if (!r) FAIL_CHECK("unexpected error: " << r.error().message);
    REQUIRE(r.has_value());
    return *r;
}

Error specError(std::string_view spec) {
    const auto r = parseWindowsSecretRef(spec);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find('\n') == std::string::npos);
    return r.error();
}

SecretRef ref(std::string source, std::string target) {
    SecretRef r;
    r.source = std::move(source);
    r.target = std::move(target);
    return r;
}

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the Windows constants are Docker's paths") {
    CHECK(kWindowsSecretsDir == "C:\\ProgramData\\Docker\\secrets");
    CHECK(kWindowsInternalDir == "C:\\ProgramData\\Docker\\internal\\secrets");
    CHECK(kWindowsMaxTarget == 259u);
    CHECK(windowsInternalFile(0) == "C:\\ProgramData\\Docker\\internal\\secrets\\0");
    CHECK(windowsInternalFile(12) == "C:\\ProgramData\\Docker\\internal\\secrets\\12");
}

TEST_CASE("accepted Windows targets and their canonical form") {
    CHECK(cleaned("") == "C:\\ProgramData\\Docker\\secrets\\db");
    CHECK(cleaned("", "api.key") == "C:\\ProgramData\\Docker\\secrets\\api.key");
    CHECK(cleaned("C:\\app\\pw") == "C:\\app\\pw");
    CHECK(cleaned("  C:\\app\\pw  ") == "C:\\app\\pw");

    SUBCASE("a relative target goes under the secrets directory") {
        CHECK(cleaned("pw") == "C:\\ProgramData\\Docker\\secrets\\pw");
        CHECK(cleaned("app\\pw.txt") == "C:\\ProgramData\\Docker\\secrets\\app\\pw.txt");
    }
    SUBCASE("forward slashes are taken as backslashes, the drive letter upper-cased") {
        CHECK(cleaned("c:/app/pw") == "C:\\app\\pw");
        CHECK(cleaned("C:\\app/conf\\pw") == "C:\\app\\conf\\pw");
        CHECK(cleaned("app/pw") == "C:\\ProgramData\\Docker\\secrets\\app\\pw");
    }
    SUBCASE("names that merely look special") {
        CHECK(cleaned("C:\\app\\console") == "C:\\app\\console");
        CHECK(cleaned("C:\\app\\COM10") == "C:\\app\\COM10");
        CHECK(cleaned("C:\\app\\LPT") == "C:\\app\\LPT");
        CHECK(cleaned("C:\\app\\.hidden") == "C:\\app\\.hidden");
        CHECK(cleaned("C:\\app\\a..b") == "C:\\app\\a..b");
        CHECK(cleaned("C:\\app\\na me") == "C:\\app\\na me");
        CHECK(cleaned("C:\\ProgramData\\Docker\\secretsX") == "C:\\ProgramData\\Docker\\secretsX");
        CHECK(cleaned("C:\\ProgramData\\Docker\\internal\\other") ==
              "C:\\ProgramData\\Docker\\internal\\other");
    }
    SUBCASE("non-ASCII names") {
        CHECK(cleaned("C:\\app\\m\xC3\xB6t\xC3\xB6r") == "C:\\app\\m\xC3\xB6t\xC3\xB6r");
        CHECK(cleaned("C:\\app\\\xF0\x9F\x94\x91") == "C:\\app\\\xF0\x9F\x94\x91");
    }
}

TEST_CASE("targets that are not plain paths on drive C: are refused") {
    CHECK(contains(refusal("D:\\app\\pw"), "is not on drive C:"));
    CHECK(contains(refusal("C:app\\pw"), "drive's current directory"));
    CHECK(contains(refusal("C:"), "drive's current directory"));
    CHECK(contains(refusal("\\app\\pw"), "names no drive"));
    CHECK(contains(refusal("/app/pw"), "names no drive"));
    CHECK(contains(refusal("\\\\server\\share\\pw"), "names no drive"));
    CHECK(contains(refusal("\\\\?\\C:\\app\\pw"), "names no drive"));
    CHECK(contains(refusal("\\\\.\\pipe\\x"), "names no drive"));
    CHECK(contains(refusal("C:\\"), "is not a file path"));
    CHECK(refusal("D:\\x") == "target \"D:\\x\" is not on drive C: (the container's filesystem)");
}

TEST_CASE("unclean targets are refused") {
    CHECK(contains(refusal("C:\\app\\..\\Windows\\pw"), "is not clean (\"..\")"));
    CHECK(contains(refusal("..\\pw"), "is not clean (\"..\")"));
    CHECK(contains(refusal("C:\\app\\.\\pw"), "is not clean (\".\")"));
    CHECK(contains(refusal("C:\\app\\\\pw"), "is not clean"));
    CHECK(contains(refusal("C://app"), "is not clean"));
    CHECK(contains(refusal("C:\\app\\"), "trailing"));
    CHECK(contains(refusal("C:\\app/"), "trailing"));
}

TEST_CASE("device names are refused with or without an extension") {
    for (const char* name : {"CON", "con", "PRN", "AUX", "NUL", "nul.txt", "NUL.tar.gz", "COM1", "com9",
                             "COM0", "LPT1", "lpt9.log", "CONIN$", "CONOUT$", "NUL .txt",
                             "COM\xC2\xB9", "LPT\xC2\xB3"}) {
        CAPTURE(name);
        CHECK(contains(refusal(std::string("C:\\app\\") + name), "names the device"));
    }
    CHECK(contains(refusal("C:\\con\\pw"), "names the device"));
    SUBCASE("a secret named like a device has no default target") {
        CHECK(contains(refusal("", "nul"), "names the device"));
    }
}

TEST_CASE("streams, reserved and control characters are refused") {
    CHECK(contains(refusal("C:\\app\\pw:stream"), "alternate data stream"));
    CHECK(contains(refusal("C:\\app\\pw::$DATA"), "alternate data stream"));
    CHECK(contains(refusal("pw:x"), "alternate data stream"));
    for (char c : std::string("<>\"|?*")) {
        CAPTURE(c);
        CHECK(contains(refusal(std::string("C:\\app\\p") + c + "w"), "reserved character"));
    }
    CHECK(contains(refusal("C:\\app\\p\tw"), "control character"));
    CHECK(contains(refusal("C:\\app\\p\x01w"), "control character"));
    CHECK(contains(refusal(std::string("C:\\app\\p\0w", 10)), "NUL byte"));
    SUBCASE("the message stays on one printable line") {
        const std::string message = refusal("C:\\app\\p\nw");
        CHECK(contains(message, "control character"));
        CHECK(contains(message, "p?w"));
    }
}

TEST_CASE("a component may not end in a dot or a space") {
    CHECK(contains(refusal("C:\\app\\pw."), "ending in a dot or a space"));
    CHECK(contains(refusal("C:\\app \\pw"), "ending in a dot or a space"));
    CHECK(contains(refusal("C:\\app\\pw. \\x"), "ending in a dot or a space"));
    // Spaces around the whole target are trimmed, as the Linux parser does.
    CHECK(cleaned("C:\\app\\pw ") == "C:\\app\\pw");
    CHECK(contains(refusal("C:\\app...\\pw"), "ending in a dot or a space"));
}

TEST_CASE("length limits count UTF-16 units") {
    const std::string c255(255, 'x');
    CHECK(cleaned("C:\\" + c255) == "C:\\" + c255);
    CHECK(contains(refusal("C:\\" + c255 + "x"), "longer than 255 characters"));
    // 64 four-byte characters are 128 UTF-16 units: fine; 128 of them are 256.
    std::string emoji64;
    for (int i = 0; i < 64; ++i) emoji64 += "\xF0\x9F\x94\x91";
    CHECK(cleaned("C:\\" + emoji64).size() == 3 + 256);
    CHECK(contains(refusal("C:\\" + emoji64 + emoji64), "longer than 255 characters"));
    // The whole path: at most 259.
    const std::string path259 = "C:\\" + std::string(200, 'a') + "\\" + std::string(55, 'b');
    REQUIRE(path259.size() == 259);
    CHECK(cleaned(path259) == path259);
    CHECK(contains(refusal(path259 + "b"), "longer than 259 characters"));
}

TEST_CASE("invalid UTF-8 is refused") {
    for (const char* raw : {"C:\\\xFF", "C:\\a\xC3", "C:\\\xC0\xAF", "C:\\\xED\xA0\x80", "C:\\\xF4\x90\x80\x80",
                            "C:\\\xE0\x80\xAF"}) {
        CHECK(contains(refusal(raw), "is not valid UTF-8"));
    }
}

TEST_CASE("targets may not hide the secrets or the internal directory") {
    CHECK(contains(refusal("C:\\ProgramData\\Docker\\secrets"), "is not a file path"));
    CHECK(contains(refusal("c:\\programdata\\docker\\SECRETS"), "is not a file path"));
    CHECK(contains(refusal("C:\\ProgramData"), "would hide C:\\ProgramData\\Docker\\secrets"));
    CHECK(contains(refusal("C:\\ProgramData\\Docker"), "would hide"));
    CHECK(contains(refusal("C:\\ProgramData\\Docker\\internal"), "would hide"));
    CHECK(contains(refusal("C:\\ProgramData\\Docker\\internal\\secrets"), "is not a file path"));
    CHECK(contains(refusal("C:\\ProgramData\\Docker\\internal\\secrets\\0"), "secretshim manages"));
    CHECK(contains(refusal("c:/programdata/docker/INTERNAL/secrets/x/y"), "secretshim manages"));
}

TEST_CASE("Windows specs are parsed by the Linux parser's rules") {
    const SecretRef shortForm = parsed("db_pass");
    CHECK(shortForm.source == "db_pass");
    CHECK(shortForm.target == "C:\\ProgramData\\Docker\\secrets\\db_pass");
    CHECK(shortForm.uid == 0);
    CHECK(shortForm.gid == 0);
    CHECK(shortForm.mode == kDefaultMode);

    CHECK(parsed("source=db,target=C:\\app\\pw").target == "C:\\app\\pw");
    CHECK(parsed("src=db, target = c:/app/pw ").target == "C:\\app\\pw");
    CHECK(parsed("target=pw,source=db").target == "C:\\ProgramData\\Docker\\secrets\\pw");
    CHECK(parsed("source=db,target=").target == "C:\\ProgramData\\Docker\\secrets\\db");

    SUBCASE("syntax errors come from the Linux parser, quoting the spec as written") {
        CHECK(specError("").message == "empty secret spec");
        CHECK(specError("source=db,target=C:\\a,foo=1").message ==
              "secret spec \"source=db,target=C:\\a,foo=1\": unknown key \"foo\"");
        CHECK(specError("source=db,target=C:\\a,target=C:\\b").message ==
              "secret spec \"source=db,target=C:\\a,target=C:\\b\": duplicate key \"target\"");
        CHECK(specError("db,target=C:\\a").message ==
              "secret spec \"db,target=C:\\a\": field \"db\" is not key=value");
        CHECK(specError("target=C:\\a").message == "secret spec \"target=C:\\a\": no source name");
        CHECK(contains(specError("source=-db").message, "does not match"));
    }
    SUBCASE("a bad target names the spec and the target") {
        CHECK(specError("source=db,target=C:\\app\\nul").message ==
              "secret spec \"source=db,target=C:\\app\\nul\": target \"C:\\app\\nul\" names the device "
              "\"nul\"");
    }
}

TEST_CASE("uid, gid and mode are refused on Windows with one clear line") {
    for (const char* key : {"uid", "gid", "mode"}) {
        CAPTURE(key);
        const std::string spec = std::string("source=db,") + key + "=0";
        const Error error = specError(spec);
        CHECK(error.code == 0);
        CHECK(error.message == "secret spec \"" + spec + "\": " + key +
                                   " is not supported on Windows (uid, gid and mode have no meaning there)");
    }
    CHECK(contains(specError("source=db,target=C:\\a,mode=").message, "mode is not supported on Windows"));
    CHECK(contains(specError("source=db, uid = 1000").message, "uid is not supported on Windows"));
}

TEST_CASE("a Windows annotation is a set of references") {
    const auto refs = parseWindowsSecretRefs("db; source=api,target=C:\\app\\key ;;");
    REQUIRE(refs.has_value());
    REQUIRE(refs->size() == 2);
    CHECK((*refs)[0].target == "C:\\ProgramData\\Docker\\secrets\\db");
    CHECK((*refs)[1].target == "C:\\app\\key");

    CHECK(parseWindowsSecretRefs(" ; ").error().message == "the secrets annotation names no secret");
    SUBCASE("targets equal up to case collide") {
        const auto r = parseWindowsSecretRefs("source=a,target=C:\\app\\pw;source=b,target=c:/APP/PW");
        REQUIRE_FALSE(r.has_value());
        CHECK(contains(r.error().message, "both target"));
    }
    SUBCASE("a target inside another is refused") {
        const auto r = parseWindowsSecretRefs("source=a,target=C:\\app;source=b,target=C:\\APP\\pw");
        REQUIRE_FALSE(r.has_value());
        CHECK(contains(r.error().message, "lies inside target"));
    }
    SUBCASE("a default target and an explicit one collide") {
        const auto r = parseWindowsSecretRefs("db;source=other,target=db");
        REQUIRE_FALSE(r.has_value());
        CHECK(contains(r.error().message, "both target"));
    }
    SUBCASE("the same secret may be referenced twice at two targets") {
        const auto r = parseWindowsSecretRefs("db;source=db,target=C:\\app\\db");
        REQUIRE(r.has_value());
        CHECK(r->size() == 2);
    }
}

TEST_CASE("validateWindowsRefs refuses references not made for Windows") {
    CHECK(validateWindowsRefs({ref("db", "C:\\app\\pw")}).has_value());
    CHECK(validateWindowsRefs({}).has_value());

    SecretRef linux = ref("db", "/run/secrets/db");
    CHECK(contains(validateWindowsRefs({linux}).error().message, "names no drive"));
    SecretRef owned = ref("db", "C:\\app\\pw");
    owned.uid = 1000;
    CHECK(contains(validateWindowsRefs({owned}).error().message, "not supported on Windows"));
    SecretRef moded = ref("db", "C:\\app\\pw");
    moded.mode = 0400;
    CHECK(contains(validateWindowsRefs({moded}).error().message, "not supported on Windows"));
    CHECK(contains(validateWindowsRefs({ref("db", "c:/app/pw")}).error().message, "canonical form"));
    CHECK(contains(validateWindowsRefs({ref("-db", "C:\\app\\pw")}).error().message, "is not valid"));
}

TEST_CASE("the Windows layout names internal files by reference index") {
    const auto layout = planWindowsView({ref("db", "C:\\ProgramData\\Docker\\secrets\\db"),
                                         ref("db", "C:\\app\\db"), ref("api", "C:\\app\\key")});
    REQUIRE(layout.has_value());
    REQUIRE(layout->entries.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(layout->entries[i].file == windowsInternalFile(i));
        CHECK_FALSE(layout->entries[i].inDirectory);
    }
    CHECK(layout->entries[1].ref.source == "db");
    CHECK(layout->entries[1].ref.target == "C:\\app\\db");
    CHECK(layout->directories.empty());
    CHECK_FALSE(layout->hasDirectoryMount());
    CHECK_FALSE(planWindowsView({ref("a", "C:\\x"), ref("b", "C:\\X")}).has_value());
}

TEST_CASE("path helpers") {
    CHECK(sameWindowsPath("C:\\App\\PW", "c:\\app\\pw"));
    CHECK_FALSE(sameWindowsPath("C:\\app\\pw", "C:\\app\\pw2"));
    CHECK(isInsideWindowsPath("C:\\app\\pw", "c:\\APP"));
    CHECK_FALSE(isInsideWindowsPath("C:\\app", "C:\\app"));
    CHECK_FALSE(isInsideWindowsPath("C:\\apple", "C:\\app"));
    CHECK(windowsPathComponents("C:\\a\\b\\c") == std::vector<std::string>{"a", "b", "c"});
    CHECK(windowsPathComponents("C:\\a") == std::vector<std::string>{"a"});
    CHECK(windowsPathComponents("C:\\").empty());
}

TEST_CASE("links are relative and reach the internal file") {
    const std::string file = windowsInternalFile(0);
    CHECK(windowsLinkText("C:\\ProgramData\\Docker\\secrets\\db", file) == "..\\internal\\secrets\\0");
    CHECK(windowsLinkText("C:\\app\\pw", file) == "..\\ProgramData\\Docker\\internal\\secrets\\0");
    CHECK(windowsLinkText("C:\\pw", file) == "ProgramData\\Docker\\internal\\secrets\\0");
    CHECK(windowsLinkText("C:\\ProgramData\\Docker\\secrets\\a\\b\\db", file) ==
          "..\\..\\..\\internal\\secrets\\0");
    CHECK(windowsLinkText("C:\\programdata\\docker\\secrets\\db", file) == "..\\internal\\secrets\\0");
    CHECK(windowsLinkText("C:\\ProgramData\\Docker\\internal\\other", file) == "secrets\\0");
}
