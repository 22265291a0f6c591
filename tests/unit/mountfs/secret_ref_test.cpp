// Tests for parsing and checking secret references (mountfs/secret_ref).
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mountfs/secret_ref.hpp"

using namespace secretshim;
using namespace secretshim::mountfs;
using namespace std::string_literals;

namespace {

// Parses a spec that must be refused and returns the error.
Error specError(std::string_view spec) {
    const auto r = parseSecretRef(spec);
    REQUIRE_FALSE(r.has_value());
    return r.error();
}

// Parses an annotation that must be refused and returns the error.
Error annotationError(std::string_view annotation) {
    const auto r = parseSecretRefs(annotation);
    REQUIRE_FALSE(r.has_value());
    return r.error();
}

// Parses a spec that must be accepted and returns the reference.
SecretRef parsed(std::string_view spec) {
    const auto r = parseSecretRef(spec);
    if (!r) FAIL_CHECK("unexpected error: " << r.error().message);
    REQUIRE(r.has_value());
    return *r;
}

SecretRef ref(std::string source, std::string target) {
    SecretRef r;
    r.source = std::move(source);
    r.target = std::move(target);
    return r;
}

// "/" followed by `length` copies of `c`.
std::string component(std::size_t length, char c = 'x') {
    return "/" + std::string(length, c);
}

}  // namespace

TEST_CASE("the constants match Docker's conventions") {
    CHECK(kSecretsDir == "/run/secrets");
    CHECK(kDefaultMode == 0444u);
    CHECK(kDefaultMaxPayload == 512000u);
}

TEST_CASE("secret names follow the documented pattern") {
    SUBCASE("plain names are accepted") {
        CHECK(isValidSecretName("a"));
        CHECK(isValidSecretName("Z"));
        CHECK(isValidSecretName("7"));
        CHECK(isValidSecretName("db_password"));
        CHECK(isValidSecretName("tls.key"));
        CHECK(isValidSecretName("api-token-2"));
        CHECK(isValidSecretName("a.."));
        CHECK(isValidSecretName("a_-."));
    }
    SUBCASE("the empty name is refused") {
        CHECK_FALSE(isValidSecretName(""));
    }
    SUBCASE("the first character must be a letter or a digit") {
        CHECK_FALSE(isValidSecretName("_a"));
        CHECK_FALSE(isValidSecretName(".a"));
        CHECK_FALSE(isValidSecretName("-a"));
        CHECK_FALSE(isValidSecretName("."));
        CHECK_FALSE(isValidSecretName(".."));
    }
    SUBCASE("other characters are refused anywhere") {
        CHECK_FALSE(isValidSecretName("a/b"));
        CHECK_FALSE(isValidSecretName("a b"));
        CHECK_FALSE(isValidSecretName("a:b"));
        CHECK_FALSE(isValidSecretName("a=b"));
        CHECK_FALSE(isValidSecretName("a,b"));
        CHECK_FALSE(isValidSecretName("a;b"));
        CHECK_FALSE(isValidSecretName("a\tb"));
        CHECK_FALSE(isValidSecretName("caf\xc3\xa9"));
        CHECK_FALSE(isValidSecretName(std::string_view("a\0b", 3)));
    }
    SUBCASE("64 characters is the longest name") {
        CHECK(isValidSecretName(std::string(64, 'n')));
        CHECK_FALSE(isValidSecretName(std::string(65, 'n')));
    }
}

TEST_CASE("an empty spec is refused") {
    CHECK(specError("").message == "empty secret spec");
    CHECK(specError("   \t\r\n ").message == "empty secret spec");
    CHECK(specError("").code == 0);
}

TEST_CASE("every field of a long spec must be key=value") {
    CHECK(specError("source=a,b").message ==
          R"(secret spec "source=a,b": field "b" is not key=value)");
    CHECK(specError("a,b").message == R"(secret spec "a,b": field "a" is not key=value)");
    SUBCASE("empty fields from stray commas are refused") {
        CHECK(specError("source=a,").message ==
              R"(secret spec "source=a,": field "" is not key=value)");
        CHECK(specError(",source=a").message ==
              R"(secret spec ",source=a": field "" is not key=value)");
        CHECK(specError("source=a,,target=b").message ==
              R"(secret spec "source=a,,target=b": field "" is not key=value)");
        CHECK(specError(",").message == R"(secret spec ",": field "" is not key=value)");
    }
}

TEST_CASE("unknown keys are refused") {
    CHECK(specError("source=a,owner=1").message ==
          R"(secret spec "source=a,owner=1": unknown key "owner")");
    SUBCASE("keys are case sensitive") {
        CHECK(specError("Source=a").message == R"(secret spec "Source=a": unknown key "Source")");
    }
    SUBCASE("an empty key is unknown") {
        CHECK(specError("=a").message == R"(secret spec "=a": unknown key "")");
    }
}

TEST_CASE("a key may appear only once") {
    CHECK(specError("source=a,source=b").message ==
          R"(secret spec "source=a,source=b": duplicate key "source")");
    CHECK(specError("source=a,target=x,target=y").message ==
          R"(secret spec "source=a,target=x,target=y": duplicate key "target")");
    CHECK(specError("source=a,uid=1,uid=1").message ==
          R"(secret spec "source=a,uid=1,uid=1": duplicate key "uid")");
    CHECK(specError("source=a,gid=1,gid=2").message ==
          R"(secret spec "source=a,gid=1,gid=2": duplicate key "gid")");
    CHECK(specError("source=a,mode=0400,mode=0400").message ==
          R"(secret spec "source=a,mode=0400,mode=0400": duplicate key "mode")");
    SUBCASE("an empty first value still counts") {
        CHECK(specError("source=a,target=,target=x").message ==
              R"(secret spec "source=a,target=,target=x": duplicate key "target")");
    }
    SUBCASE("source and its alias src are the same key") {
        CHECK(specError("source=a,src=b").message ==
              R"(secret spec "source=a,src=b": duplicate key "src")");
        CHECK(specError("src=a,source=a").message ==
              R"(secret spec "src=a,source=a": duplicate key "source")");
        CHECK(specError("src=a,src=b").message ==
              R"(secret spec "src=a,src=b": duplicate key "src")");
    }
}

TEST_CASE("a spec must name its source") {
    CHECK(specError("target=x").message == R"(secret spec "target=x": no source name)");
    CHECK(specError("uid=1,gid=2").message == R"(secret spec "uid=1,gid=2": no source name)");
    CHECK(specError("source=").message == R"(secret spec "source=": no source name)");
    CHECK(specError("src=  ,target=x").message ==
          R"(secret spec "src=  ,target=x": no source name)");
}

TEST_CASE("the source name must be valid") {
    SUBCASE("in the short form") {
        CHECK(specError("_a").message ==
              R"(secret spec "_a": name "_a" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
        CHECK(specError("a b").message ==
              R"(secret spec "a b": name "a b" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
        CHECK(specError("a/b").message ==
              R"(secret spec "a/b": name "a/b" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
    }
    SUBCASE("in the long form") {
        CHECK(specError("source=.hidden").message ==
              R"(secret spec "source=.hidden": name ".hidden" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
        CHECK(specError("src=-a,target=x").message ==
              R"(secret spec "src=-a,target=x": name "-a" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
        CHECK(specError("source=a:b").message ==
              R"(secret spec "source=a:b": name "a:b" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
    }
    SUBCASE("65 characters is one too many") {
        const std::string name(65, 'n');
        CHECK(specError(name).message == "secret spec \"" + name + "\": name \"" + name +
                                             "\" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    }
    SUBCASE("64 characters is accepted") {
        const std::string name(64, 'n');
        CHECK(parsed(name).source == name);
        CHECK(parsed("source=" + name).target == "/run/secrets/" + name);
    }
    SUBCASE("control characters and NUL bytes are shown printably in the error") {
        CHECK(specError("a\tb").message ==
              R"(secret spec "a?b": name "a?b" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
        const std::string withNul = "a\0b"s;
        CHECK(specError(std::string_view(withNul)).message ==
              R"(secret spec "a\0b": name "a\0b" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
    }
}

TEST_CASE("a bare name is the short form") {
    const SecretRef r = parsed("db_password");
    CHECK(r.source == "db_password");
    CHECK(r.target == "/run/secrets/db_password");
    CHECK(r.uid == 0u);
    CHECK(r.gid == 0u);
    CHECK(r.mode == 0444u);
}

TEST_CASE("the long form sets every field") {
    const SecretRef r = parsed("source=tls.key,target=/etc/app/tls.key,uid=1000,gid=2000,mode=0600");
    CHECK(r.source == "tls.key");
    CHECK(r.target == "/etc/app/tls.key");
    CHECK(r.uid == 1000u);
    CHECK(r.gid == 2000u);
    CHECK(r.mode == 0600u);
    SUBCASE("src is an alias of source") {
        CHECK(parsed("src=tls.key") == parsed("source=tls.key"));
    }
    SUBCASE("fields may come in any order") {
        CHECK(parsed("mode=0600,gid=2000,uid=1000,target=/etc/app/tls.key,source=tls.key") == r);
    }
}

TEST_CASE("targets are made absolute") {
    SUBCASE("without a target the secret goes to /run/secrets/<name>") {
        CHECK(parsed("source=a").target == "/run/secrets/a");
        CHECK(parsed("source=a,uid=1").target == "/run/secrets/a");
    }
    SUBCASE("an empty target means the default") {
        CHECK(parsed("source=a,target=").target == "/run/secrets/a");
    }
    SUBCASE("a relative target is taken under /run/secrets") {
        CHECK(parsed("source=a,target=b").target == "/run/secrets/b");
        CHECK(parsed("source=a,target=sub/dir/b").target == "/run/secrets/sub/dir/b");
    }
    SUBCASE("absolute targets are kept") {
        CHECK(parsed("source=a,target=/etc/a").target == "/etc/a");
        CHECK(parsed("source=a,target=/run/secrets/b").target == "/run/secrets/b");
        CHECK(parsed("source=a,target=/a").target == "/a");
    }
    SUBCASE("dots inside names are not path components") {
        CHECK(parsed("source=a,target=/etc/...").target == "/etc/...");
        CHECK(parsed("source=a,target=.hidden").target == "/run/secrets/.hidden");
        CHECK(parsed("source=a,target=/etc/a..b").target == "/etc/a..b");
    }
    SUBCASE("directories that merely start like a forbidden one are allowed") {
        CHECK(parsed("source=a,target=/procfoo").target == "/procfoo");
        CHECK(parsed("source=a,target=/system/a").target == "/system/a");
        CHECK(parsed("source=a,target=/devices").target == "/devices");
        CHECK(parsed("source=a,target=/run/secretsfoo").target == "/run/secretsfoo");
        CHECK(parsed("source=a,target=/run/other").target == "/run/other");
    }
}

TEST_CASE("targets must be clean paths") {
    SUBCASE("double slashes") {
        CHECK(specError("source=a,target=/etc//a").message ==
              R"(secret spec "source=a,target=/etc//a": target "/etc//a" is not clean ("//"))");
        CHECK(specError("source=a,target=//etc/a").message ==
              R"(secret spec "source=a,target=//etc/a": target "//etc/a" is not clean ("//"))");
        CHECK(specError("source=a,target=b//c").message ==
              R"(secret spec "source=a,target=b//c": target "b//c" is not clean ("//"))");
    }
    SUBCASE("a trailing slash") {
        CHECK(specError("source=a,target=/etc/a/").message ==
              R"(secret spec "source=a,target=/etc/a/": target "/etc/a/" is not clean (trailing "/"))");
        CHECK(specError("source=a,target=b/").message ==
              R"(secret spec "source=a,target=b/": target "b/" is not clean (trailing "/"))");
        CHECK(specError("source=a,target=/run/secrets/").message ==
              R"(secret spec "source=a,target=/run/secrets/": target "/run/secrets/" is not clean (trailing "/"))");
    }
    SUBCASE("a .. component") {
        CHECK(specError("source=a,target=/etc/../a").message ==
              R"(secret spec "source=a,target=/etc/../a": target "/etc/../a" is not clean (".."))");
        CHECK(specError("source=a,target=../etc/passwd").message ==
              R"(secret spec "source=a,target=../etc/passwd": target "../etc/passwd" is not clean (".."))");
        CHECK(specError("source=a,target=/etc/..").message ==
              R"(secret spec "source=a,target=/etc/..": target "/etc/.." is not clean (".."))");
        CHECK(specError("source=a,target=..").message ==
              R"(secret spec "source=a,target=..": target ".." is not clean (".."))");
    }
    SUBCASE("a . component") {
        CHECK(specError("source=a,target=/etc/./a").message ==
              R"(secret spec "source=a,target=/etc/./a": target "/etc/./a" is not clean ("."))");
        CHECK(specError("source=a,target=./a").message ==
              R"(secret spec "source=a,target=./a": target "./a" is not clean ("."))");
        CHECK(specError("source=a,target=.").message ==
              R"(secret spec "source=a,target=.": target "." is not clean ("."))");
        CHECK(specError("source=a,target=/.").message ==
              R"(secret spec "source=a,target=/.": target "/." is not clean ("."))");
    }
}

TEST_CASE("a target with a NUL byte is refused") {
    SUBCASE("absolute") {
        const std::string spec = "source=a,target=/etc/a\0b"s;
        REQUIRE(spec.size() == 24);
        const std::string_view view(spec);
        CHECK(specError(view).message ==
              R"(secret spec "source=a,target=/etc/a\0b": target "/etc/a\0b" contains a NUL byte)");
    }
    SUBCASE("relative") {
        const std::string spec = "source=a,target=\0"s;
        REQUIRE(spec.size() == 17);
        CHECK(specError(std::string_view(spec)).message ==
              R"(secret spec "source=a,target=\0": target "\0" contains a NUL byte)");
    }
}

TEST_CASE("targets under /proc, /sys and /dev are refused") {
    CHECK(specError("source=a,target=/proc/self/environ").message ==
          R"(secret spec "source=a,target=/proc/self/environ": target "/proc/self/environ" is under /proc)");
    CHECK(specError("source=a,target=/sys/kernel/a").message ==
          R"(secret spec "source=a,target=/sys/kernel/a": target "/sys/kernel/a" is under /sys)");
    CHECK(specError("source=a,target=/dev/shm/a").message ==
          R"(secret spec "source=a,target=/dev/shm/a": target "/dev/shm/a" is under /dev)");
    SUBCASE("the directories themselves") {
        CHECK(specError("source=a,target=/proc").message ==
              R"(secret spec "source=a,target=/proc": target "/proc" is under /proc)");
        CHECK(specError("source=a,target=/sys").message ==
              R"(secret spec "source=a,target=/sys": target "/sys" is under /sys)");
        CHECK(specError("source=a,target=/dev").message ==
              R"(secret spec "source=a,target=/dev": target "/dev" is under /dev)");
    }
}

TEST_CASE("a target must not hide /run/secrets") {
    SUBCASE("/run/secrets itself is not a file path") {
        CHECK(specError("source=a,target=/run/secrets").message ==
              R"(secret spec "source=a,target=/run/secrets": target "/run/secrets" is not a file path)");
    }
    SUBCASE("the root is refused as unclean") {
        CHECK(specError("source=a,target=/").message ==
              R"(secret spec "source=a,target=/": target "/" is not clean (trailing "/"))");
    }
    SUBCASE("/run is refused") {
        CHECK_FALSE(parseSecretRef("source=a,target=/run").has_value());
        CHECK(specError("source=a,target=/run").message ==
              R"(secret spec "source=a,target=/run": target "/run" would hide /run/secrets)");
    }
}

TEST_CASE("target length limits") {
    // 15 components of 255 bytes plus one of 254: 3840 + 255 = 4095 bytes.
    std::string longest;
    for (int i = 0; i < 15; ++i) longest += component(255);
    longest += component(254);
    REQUIRE(longest.size() == 4095);

    SUBCASE("a target over 4095 bytes is too long") {
        const std::string target = longest + "y";
        const std::string spec = "source=a,target=" + target;
        CHECK(specError(spec).message ==
              "secret spec \"" + spec + "\": target \"" + target + "\" is too long");
    }
    SUBCASE("the /run/secrets prefix counts towards the length") {
        const std::string target(4096 - 13, 'r');
        const std::string spec = "source=a,target=" + target;
        CHECK(specError(spec).message ==
              "secret spec \"" + spec + "\": target \"" + target + "\" is too long");
    }
    SUBCASE("a component over 255 bytes is refused") {
        const std::string target = "/etc" + component(256);
        const std::string spec = "source=a,target=" + target;
        CHECK(specError(spec).message == "secret spec \"" + spec + "\": target \"" + target +
                                             "\" has a component longer than 255 bytes");
        const std::string relative(256, 'c');
        const std::string relativeSpec = "source=a,target=" + relative;
        CHECK(specError(relativeSpec).message == "secret spec \"" + relativeSpec +
                                                     "\": target \"" + relative +
                                                     "\" has a component longer than 255 bytes");
    }
    SUBCASE("4095 bytes and components of 255 bytes are accepted") {
        CHECK(parsed("source=a,target=" + longest).target == longest);
        CHECK(parsed("source=a,target=/etc" + component(255)).target == "/etc" + component(255));
    }
}

TEST_CASE("uid and gid are decimal numbers up to 4294967294") {
    SUBCASE("empty means 0") {
        const SecretRef r = parsed("source=a,uid=,gid=");
        CHECK(r.uid == 0u);
        CHECK(r.gid == 0u);
    }
    SUBCASE("numbers are taken as given") {
        const SecretRef r = parsed("source=a,uid=1000,gid=42");
        CHECK(r.uid == 1000u);
        CHECK(r.gid == 42u);
        CHECK(parsed("source=a,uid=007").uid == 7u);
        CHECK(parsed("source=a,gid=0").gid == 0u);
    }
    SUBCASE("4294967294 is the largest id") {
        const SecretRef r = parsed("source=a,uid=4294967294,gid=4294967294");
        CHECK(r.uid == 4294967294u);
        CHECK(r.gid == 4294967294u);
    }
    SUBCASE("4294967295 is refused") {
        CHECK(specError("source=a,uid=4294967295").message ==
              R"(secret spec "source=a,uid=4294967295": uid "4294967295" is larger than 4294967294)");
        CHECK(specError("source=a,gid=4294967295").message ==
              R"(secret spec "source=a,gid=4294967295": gid "4294967295" is larger than 4294967294)");
    }
    SUBCASE("huge numbers are refused without wrapping around") {
        CHECK(specError("source=a,uid=99999999999999999999999999").message ==
              R"(secret spec "source=a,uid=99999999999999999999999999": uid "99999999999999999999999999" is larger than 4294967294)");
        CHECK(specError("source=a,gid=18446744073709551616").message ==
              R"(secret spec "source=a,gid=18446744073709551616": gid "18446744073709551616" is larger than 4294967294)");
    }
    SUBCASE("anything but digits is refused") {
        CHECK(specError("source=a,uid=root").message ==
              R"(secret spec "source=a,uid=root": uid "root" is not a number)");
        CHECK(specError("source=a,uid=-1").message ==
              R"(secret spec "source=a,uid=-1": uid "-1" is not a number)");
        CHECK(specError("source=a,uid=+1").message ==
              R"(secret spec "source=a,uid=+1": uid "+1" is not a number)");
        CHECK(specError("source=a,gid=0x10").message ==
              R"(secret spec "source=a,gid=0x10": gid "0x10" is not a number)");
        CHECK(specError("source=a,gid=1 2").message ==
              R"(secret spec "source=a,gid=1 2": gid "1 2" is not a number)");
        CHECK(specError("source=a,gid=-5").message ==
              R"(secret spec "source=a,gid=-5": gid "-5" is not a number)");
    }
}

TEST_CASE("mode is octal up to 0777") {
    SUBCASE("empty or absent means 0444") {
        CHECK(parsed("source=a").mode == 0444u);
        CHECK(parsed("source=a,mode=").mode == 0444u);
    }
    SUBCASE("octal values are taken with or without a leading zero") {
        CHECK(parsed("source=a,mode=0600").mode == 0600u);
        CHECK(parsed("source=a,mode=600").mode == 0600u);
        CHECK(parsed("source=a,mode=0").mode == 0u);
        CHECK(parsed("source=a,mode=0400").mode == 0400u);
    }
    SUBCASE("0777 is the largest mode") {
        CHECK(parsed("source=a,mode=0777").mode == 0777u);
        CHECK(parsed("source=a,mode=777").mode == 0777u);
    }
    SUBCASE("leading zeros do not count") {
        CHECK(parsed("source=a,mode=0000644").mode == 0644u);
        CHECK(parsed("source=a,mode=000000000000000000000777").mode == 0777u);
    }
    SUBCASE("01000 and above are refused") {
        CHECK(specError("source=a,mode=01000").message ==
              R"(secret spec "source=a,mode=01000": mode "01000" is outside 0..0777)");
        CHECK(specError("source=a,mode=4755").message ==
              R"(secret spec "source=a,mode=4755": mode "4755" is outside 0..0777)");
        CHECK(specError("source=a,mode=77777777777777777777777").message ==
              R"(secret spec "source=a,mode=77777777777777777777777": mode "77777777777777777777777" is outside 0..0777)");
    }
    SUBCASE("non-octal digits are refused") {
        CHECK(specError("source=a,mode=8").message ==
              R"(secret spec "source=a,mode=8": mode "8" is not octal)");
        CHECK(specError("source=a,mode=0648").message ==
              R"(secret spec "source=a,mode=0648": mode "0648" is not octal)");
        CHECK(specError("source=a,mode=0o644").message ==
              R"(secret spec "source=a,mode=0o644": mode "0o644" is not octal)");
        CHECK(specError("source=a,mode=-1").message ==
              R"(secret spec "source=a,mode=-1": mode "-1" is not octal)");
        CHECK(specError("source=a,mode=rw").message ==
              R"(secret spec "source=a,mode=rw": mode "rw" is not octal)");
    }
}

TEST_CASE("whitespace around specs, keys and values is ignored") {
    SUBCASE("the spec shown in errors is trimmed") {
        CHECK(specError("  \tsource=a,owner=1 \n").message ==
              R"(secret spec "source=a,owner=1": unknown key "owner")");
    }
    SUBCASE("keys are trimmed") {
        CHECK(specError("source=a, owner =1").message ==
              R"(secret spec "source=a, owner =1": unknown key "owner")");
        CHECK(specError(" source = a , src = b ").message ==
              R"(secret spec "source = a , src = b": duplicate key "src")");
    }
    SUBCASE("values are trimmed") {
        CHECK(specError("source= _a ").message ==
              R"(secret spec "source= _a": name "_a" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
        CHECK(specError("source=a,target= /proc ").message ==
              R"(secret spec "source=a,target= /proc": target "/proc" is under /proc)");
    }
    SUBCASE("a field made only of spaces is not key=value") {
        CHECK(specError("source=a,  ,target=b").message ==
              R"(secret spec "source=a,  ,target=b": field "  " is not key=value)");
    }
    SUBCASE("a trimmed spec parses like the plain one") {
        CHECK(parsed("  \tdb\n ") == parsed("db"));
        CHECK(parsed(" source = db , target = x/y , uid = 5 , gid = 6 , mode = 0640 ") ==
              parsed("source=db,target=x/y,uid=5,gid=6,mode=0640"));
        CHECK(parsed("source=db,target=  ").target == "/run/secrets/db");
    }
}

TEST_CASE("an annotation that names no secret is refused") {
    CHECK(annotationError("").message == "the secrets annotation names no secret");
    CHECK(annotationError(";").message == "the secrets annotation names no secret");
    CHECK(annotationError(" ; \t ;\n;  ").message == "the secrets annotation names no secret");
    CHECK(annotationError("").code == 0);
}

TEST_CASE("an error in one spec of an annotation is reported as is") {
    CHECK(annotationError("source=a,owner=1").message ==
          R"(secret spec "source=a,owner=1": unknown key "owner")");
    SUBCASE("the spec is trimmed before it is parsed") {
        CHECK(annotationError("  _a  ").message ==
              R"(secret spec "_a": name "_a" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
    }
    SUBCASE("blank entries are skipped, not reported as empty specs") {
        CHECK(annotationError(";; \t;_a;").message ==
              R"(secret spec "_a": name "_a" does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,63})");
    }
    SUBCASE("the first bad spec is reported") {
        CHECK(annotationError("owner=1;_a").message ==
              R"(secret spec "owner=1": unknown key "owner")");
    }
    SUBCASE("a bad spec after good ones is reported") {
        CHECK(annotationError("a;b;source=c,mode=9").message ==
              R"(secret spec "source=c,mode=9": mode "9" is not octal)");
    }
}

TEST_CASE("an annotation is split on semicolons") {
    const auto r = parseSecretRefs(" a ;; source=b,target=/etc/b,uid=7 ;\t; c ;");
    REQUIRE(r.has_value());
    REQUIRE(r->size() == 3);
    CHECK((*r)[0] == parsed("a"));
    CHECK((*r)[1] == parsed("source=b,target=/etc/b,uid=7"));
    CHECK((*r)[2].target == "/run/secrets/c");
    SUBCASE("a single spec needs no separator") {
        const auto one = parseSecretRefs("a");
        REQUIRE(one.has_value());
        CHECK(*one == std::vector<SecretRef>{parsed("a")});
    }
    SUBCASE("the same secret may be referenced twice at different targets") {
        const auto twice = parseSecretRefs("a;source=a,target=/etc/a,mode=0400");
        REQUIRE(twice.has_value());
        REQUIRE(twice->size() == 2);
        CHECK((*twice)[0].mode == 0444u);
        CHECK((*twice)[1].mode == 0400u);
    }
}

TEST_CASE("an annotation is checked as a whole") {
    SUBCASE("two specs with the same target") {
        CHECK(annotationError("a;source=b,target=a").message ==
              R"(secrets "a" and "b" both target "/run/secrets/a")");
        CHECK(annotationError("a;a").message ==
              R"(secrets "a" and "a" both target "/run/secrets/a")");
        CHECK(annotationError("source=a,target=/etc/x;source=b,target=/etc/x").message ==
              R"(secrets "a" and "b" both target "/etc/x")");
    }
    SUBCASE("a target inside another") {
        CHECK(annotationError("source=a,target=x;source=b,target=x/y").message ==
              R"(target "/run/secrets/x/y" of secret "b" lies inside target "/run/secrets/x" of secret "a")");
    }
}

TEST_CASE("validateRefs accepts distinct, unrelated targets") {
    CHECK(validateRefs({}).has_value());
    CHECK(validateRefs({ref("a", "/run/secrets/a")}).has_value());
    CHECK(validateRefs({ref("a", "/run/secrets/a"), ref("b", "/run/secrets/b"),
                        ref("c", "/etc/c")})
              .has_value());
    SUBCASE("one secret may be shown at several targets") {
        CHECK(validateRefs({ref("a", "/run/secrets/a"), ref("a", "/etc/a")}).has_value());
    }
    SUBCASE("a shared name prefix is not nesting") {
        CHECK(validateRefs({ref("a", "/run/secrets/a"), ref("b", "/run/secrets/ab")}).has_value());
        CHECK(validateRefs({ref("a", "/etc/a/b"), ref("b", "/etc/a/bc")}).has_value());
    }
    SUBCASE("siblings in a nested directory are fine") {
        CHECK(validateRefs({ref("a", "/run/secrets/d/a"), ref("b", "/run/secrets/d/b")})
                  .has_value());
    }
}

TEST_CASE("validateRefs refuses two references with the same target") {
    const auto r = validateRefs({ref("a", "/run/secrets/x"), ref("b", "/run/secrets/x")});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == R"(secrets "a" and "b" both target "/run/secrets/x")");
    CHECK(r.error().code == 0);
    SUBCASE("also when the two are not adjacent") {
        const auto r3 = validateRefs(
            {ref("a", "/etc/a"), ref("b", "/run/secrets/b"), ref("c", "/etc/a")});
        REQUIRE_FALSE(r3.has_value());
        CHECK(r3.error().message == R"(secrets "a" and "c" both target "/etc/a")");
    }
    SUBCASE("also for the same secret twice") {
        const auto same = validateRefs({ref("a", "/etc/a"), ref("a", "/etc/a")});
        REQUIRE_FALSE(same.has_value());
        CHECK(same.error().message == R"(secrets "a" and "a" both target "/etc/a")");
    }
}

TEST_CASE("validateRefs refuses a target that lies inside another") {
    SUBCASE("the outer target first") {
        const auto r = validateRefs({ref("a", "/run/secrets/x"), ref("b", "/run/secrets/x/y")});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message ==
              R"(target "/run/secrets/x/y" of secret "b" lies inside target "/run/secrets/x" of secret "a")");
    }
    SUBCASE("the inner target first") {
        const auto r = validateRefs({ref("b", "/run/secrets/x/y"), ref("a", "/run/secrets/x")});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message ==
              R"(target "/run/secrets/x/y" of secret "b" lies inside target "/run/secrets/x" of secret "a")");
    }
    SUBCASE("several levels deep, outside /run/secrets") {
        const auto r = validateRefs({ref("a", "/etc/a"), ref("b", "/etc/a/b/c")});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message ==
              R"(target "/etc/a/b/c" of secret "b" lies inside target "/etc/a" of secret "a")");
    }
}

TEST_CASE("payload size checks") {
    SUBCASE("an empty payload is refused") {
        const auto r = checkPayloadSize("db", 0);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message == R"(secret "db" is empty)");
        CHECK(r.error().code == 0);
        const auto custom = checkPayloadSize("db", 0, 10);
        REQUIRE_FALSE(custom.has_value());
        CHECK(custom.error().message == R"(secret "db" is empty)");
    }
    SUBCASE("small payloads are accepted") {
        CHECK(checkPayloadSize("db", 1).has_value());
        CHECK(checkPayloadSize("db", 4096).has_value());
    }
    SUBCASE("exactly the default limit is accepted") {
        CHECK(checkPayloadSize("db", kDefaultMaxPayload).has_value());
        CHECK(checkPayloadSize("db", 512000).has_value());
    }
    SUBCASE("one byte over the default limit is refused") {
        const auto r = checkPayloadSize("db", kDefaultMaxPayload + 1);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message == R"(secret "db" is 512001 bytes, over the limit of 512000)");
    }
    SUBCASE("a custom limit") {
        CHECK(checkPayloadSize("db", 10, 10).has_value());
        const auto r = checkPayloadSize("db", 11, 10);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message == R"(secret "db" is 11 bytes, over the limit of 10)");
        const auto bigger = checkPayloadSize("db", 600000, 1000000);
        CHECK(bigger.has_value());
    }
}

TEST_CASE("at most kMaxRefs references, checked in linear time") {
    std::string annotation;
    for (std::size_t i = 0; i < kMaxRefs; ++i) annotation += "source=s,target=/srv/d" + std::to_string(i) + "/f;";
    auto ok = parseSecretRefs(annotation);
    REQUIRE(ok.has_value());
    CHECK(ok->size() == kMaxRefs);
    auto over = parseSecretRefs(annotation + "extra");
    REQUIRE_FALSE(over.has_value());
    CHECK(over.error().message == "a task may reference at most 1024 secrets, not 1025");
    // Nesting is still found among many references.
    auto nested = parseSecretRefs(std::string("source=s,target=/srv/d7/f;source=s,target=/srv/d8/f;") +
                                  "source=s,target=/srv/d7/f/g");
    REQUIRE_FALSE(nested.has_value());
    CHECK(nested.error().message ==
          "target \"/srv/d7/f/g\" of secret \"s\" lies inside target \"/srv/d7/f\" of secret \"s\"");
}
