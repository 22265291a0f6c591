#include <doctest/doctest.h>

#include "plugin/identity/grant_rule.hpp"

using namespace secretshim;
using namespace secretshim::plugin;

namespace {

WorkloadIdentity kube(const std::string& ns, const std::string& pod, const std::string& container) {
    WorkloadIdentity id;
    id.kind = WorkloadIdentity::Kind::kubernetes;
    id.integration = Integration::containerdCri;
    id.ns = ns;
    id.pod = pod;
    id.podUid = "uid-1";
    id.container = container;
    return id;
}

WorkloadIdentity podman(const std::string& name) {
    WorkloadIdentity id;
    id.kind = WorkloadIdentity::Kind::podman;
    id.integration = Integration::podman;
    id.name = name;
    return id;
}

WorkloadIdentity root() { return WorkloadIdentity{}; }

GrantRule rule(const char* text) {
    auto r = GrantRule::parse(text);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    return *r;
}

std::string parseError(const char* text) {
    auto r = GrantRule::parse(text);
    return r ? std::string("parsed") : r.error().message;
}

mountfs::SecretRef ref(const char* spec) { return *mountfs::parseSecretRef(spec); }

}  // namespace

TEST_CASE("globs: * is any run, ? one character, nothing else is special") {
    CHECK(globMatch("*", ""));
    CHECK(globMatch("*", "anything"));
    CHECK(globMatch("web-*", "web-1"));
    CHECK(globMatch("web-*", "web-"));
    CHECK_FALSE(globMatch("web-*", "web"));
    CHECK_FALSE(globMatch("web-*", "xweb-1"));
    CHECK(globMatch("*-api", "payments-api"));
    CHECK_FALSE(globMatch("*-api", "payments-api2"));
    CHECK(globMatch("w?b", "web"));
    CHECK_FALSE(globMatch("w?b", "wb"));
    CHECK(globMatch("a*b*c", "aXXbYYc"));
    CHECK_FALSE(globMatch("a*b*c", "aXXbYY"));
    CHECK(globMatch("exact", "exact"));
    CHECK_FALSE(globMatch("exact", "exact2"));
    // Backtracking stays linear: a long near-miss is answered at once.
    CHECK_FALSE(globMatch("*a*a*a*a*a*b", std::string(200, 'a')));
}

TEST_CASE("a kubernetes rule: the namespace exactly, pod and container by glob") {
    const GrantRule r = rule("kubernetes,namespace=tenant-a,pod=web-*,container=app");
    CHECK(r.matches(kube("tenant-a", "web-7f9", "app")));
    CHECK_FALSE(r.matches(kube("tenant-b", "web-7f9", "app")));
    CHECK_FALSE(r.matches(kube("tenant-a", "db-0", "app")));
    CHECK_FALSE(r.matches(kube("tenant-a", "web-7f9", "sidecar")));
    CHECK_FALSE(r.matches(kube("tenant-ab", "web-1", "app")));  // no prefix match on the namespace
    CHECK_FALSE(r.matches(podman("web-1")));
    CHECK_FALSE(r.matches(root()));
    const GrantRule whole = rule("kubernetes,namespace=tenant-a");
    CHECK(whole.matches(kube("tenant-a", "anything", "any")));
    CHECK_FALSE(whole.matches(kube("tenant-b", "anything", "any")));
}

TEST_CASE("a podman rule matches the container's name; root matches only containers root started") {
    const GrantRule p = rule("podman,name=web-*");
    CHECK(p.matches(podman("web-1")));
    CHECK_FALSE(p.matches(podman("vibrant_hopper")));
    CHECK_FALSE(p.matches(root()));
    const GrantRule r = rule("root");
    CHECK(r.matches(root()));
    WorkloadIdentity ctr;
    ctr.integration = Integration::containerd;
    CHECK(r.matches(ctr));
    CHECK_FALSE(r.matches(podman("root")));
    CHECK_FALSE(r.matches(kube("root", "root", "root")));
}

TEST_CASE("pins: a pinned field must be exactly what the reference asks for") {
    const GrantRule r = rule("podman,name=web-*,target=/run/secrets/db,uid=1000,mode=0400");
    const WorkloadIdentity who = podman("web-1");
    CHECK(r.allows(who, ref("source=db,target=/run/secrets/db,uid=1000,mode=0400")));
    CHECK(r.allows(who, ref("source=db,target=db,uid=1000,gid=7,mode=0400")));  // relative target, gid not pinned
    CHECK_FALSE(r.allows(who, ref("source=db,target=/etc/leak,uid=1000,mode=0400")));
    CHECK_FALSE(r.allows(who, ref("source=db,target=/run/secrets/db,uid=0,mode=0400")));
    CHECK_FALSE(r.allows(who, ref("source=db,target=/run/secrets/db,uid=1000,mode=0444")));
    CHECK_FALSE(r.allows(who, ref("db")));  // the defaults are not the pins
    CHECK_FALSE(r.allows(podman("other"), ref("source=db,target=/run/secrets/db,uid=1000,mode=0400")));
    CHECK(rule("root").allows(root(), ref("source=db,target=/anywhere/x,uid=5,mode=0777")));
}

TEST_CASE("text(): one spelling per rule, what revoke compares") {
    CHECK(rule("kubernetes, container=app ,namespace=tenant-a,pod=web-*").text() ==
          "kubernetes,namespace=tenant-a,pod=web-*,container=app");
    CHECK(rule("kubernetes,namespace=a,pod=*,container=*").text() == "kubernetes,namespace=a");
    CHECK(rule("root,mode=400,uid=1,target=x").text() == "root,target=/run/secrets/x,uid=1,mode=0400");
    CHECK(rule("podman,name=w?b").text() == "podman,name=w?b");
    CHECK(rule("root,mode=0400,target=/run/secrets/x,uid=1") == rule("root,uid=1,target=x,mode=400"));
    for (const char* text : {"root", "podman,name=x", "kubernetes,namespace=n,pod=p*,container=c,target=/a/b,uid=0,gid=4294967294,mode=0000"})
        CHECK(rule(rule(text).text().c_str()).text() == rule(text).text());
}

TEST_CASE("bad rules are refused in one line that names the problem") {
    CHECK(parseError("") == "grant rule \"\": it must start with kubernetes, podman or root, not \"\"");
    CHECK(parseError("everyone") == "grant rule \"everyone\": it must start with kubernetes, podman or root, not \"everyone\"");
    CHECK(parseError("kubernetes") == "grant rule \"kubernetes\": a kubernetes rule needs namespace=");
    CHECK(parseError("kubernetes,pod=x") == "grant rule \"kubernetes,pod=x\": a kubernetes rule needs namespace=");
    CHECK(parseError("podman") == "grant rule \"podman\": a podman rule needs name=");
    CHECK(parseError("kubernetes,namespace=Tenant") ==
          "grant rule \"kubernetes,namespace=Tenant\": namespace \"Tenant\" is not a Kubernetes namespace name");
    CHECK(parseError("kubernetes,namespace=tenant-*") ==
          "grant rule \"kubernetes,namespace=tenant-*\": namespace \"tenant-*\" is not a Kubernetes namespace name");
    CHECK(parseError("kubernetes,namespace=a,namespace=b") == "grant rule \"kubernetes,namespace=a,namespace=b\": duplicate key \"namespace\"");
    CHECK(parseError("podman,name=a/b") == "grant rule \"podman,name=a/b\": name \"a/b\" is not a name or a glob of one");
    CHECK(parseError("podman,name=[ab]") == "grant rule \"podman,name=[ab]\": name \"[ab]\" is not a name or a glob of one");
    CHECK(parseError("root,name=x") == "grant rule \"root,name=x\": unknown key \"name\" for a root rule");
    CHECK(parseError("podman,name=x,namespace=y") == "grant rule \"podman,name=x,namespace=y\": unknown key \"namespace\" for a podman rule");
    CHECK(parseError("root,target=../x") == "grant rule \"root,target=../x\": target \"../x\" is not clean (\"..\")");
    CHECK(parseError("root,target=/proc/x") == "grant rule \"root,target=/proc/x\": target \"/proc/x\" is under /proc");
    CHECK(parseError("root,target=") == "grant rule \"root,target=\": target is empty");
    CHECK(parseError("root,uid=x") == "grant rule \"root,uid=x\": uid \"x\" is not a number");
    CHECK(parseError("root,uid=") == "grant rule \"root,uid=\": uid is empty");
    CHECK(parseError("root,mode=0999") == "grant rule \"root,mode=0999\": mode \"0999\" is not octal");
    CHECK(parseError("root,root") == "grant rule \"root,root\": field \"root\" is not key=value");
    CHECK(parseError(std::string(9000, 'x').c_str()).find("longer than 8192 bytes") != std::string::npos);
    // A newline cannot make a second line.
    CHECK(parseError("podman,name=a\nb").find('\n') == std::string::npos);
}
