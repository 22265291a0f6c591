#include <doctest/doctest.h>

#include "plugin/identity/workload_identity.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;

TEST_CASE("integrations by name; each decides the kind of identity") {
    for (const char* name : {"bundle", "containerd", "podman", "containerd-cri", "cri-o"}) {
        auto i = parseIntegration(name);
        REQUIRE(i.has_value());
        CHECK(integrationName(*i) == name);
    }
    CHECK_FALSE(parseIntegration("runc").has_value());
    CHECK_FALSE(parseIntegration("").has_value());
    CHECK(kindOf(Integration::bundle) == WorkloadIdentity::Kind::root);
    CHECK(kindOf(Integration::containerd) == WorkloadIdentity::Kind::root);
    CHECK(kindOf(Integration::podman) == WorkloadIdentity::Kind::podman);
    CHECK(kindOf(Integration::containerdCri) == WorkloadIdentity::Kind::kubernetes);
    CHECK(kindOf(Integration::crio) == WorkloadIdentity::Kind::kubernetes);
}

TEST_CASE("an identity round-trips through JSON and describes itself in one line") {
    WorkloadIdentity k;
    k.kind = WorkloadIdentity::Kind::kubernetes;
    k.integration = Integration::crio;
    k.ns = "tenant-a";
    k.pod = "web-7f9";
    k.podUid = "0f1e2d3c-aaaa-bbbb-cccc-111122223333";
    k.container = "app";
    k.image = "registry.example/app:1.2";
    auto back = WorkloadIdentity::fromJson(k.toJson());
    REQUIRE(back.has_value());
    CHECK(*back == k);
    CHECK(k.describe() == "kubernetes pod tenant-a/web-7f9 container app");

    WorkloadIdentity p;
    p.kind = WorkloadIdentity::Kind::podman;
    p.integration = Integration::podman;
    p.name = "web-1";
    CHECK(*WorkloadIdentity::fromJson(p.toJson()) == p);
    CHECK(p.describe() == "podman container web-1");

    WorkloadIdentity r;
    r.integration = Integration::containerd;
    CHECK(*WorkloadIdentity::fromJson(r.toJson()) == r);
    CHECK(r.describe() == "a container started by root (containerd)");
    // The kind comes from the integration, never from a field of its own.
    auto forged = WorkloadIdentity::fromJson(json{{"integration", "bundle"}, {"namespace", "tenant-a"}});
    REQUIRE(forged.has_value());
    CHECK(forged->kind == WorkloadIdentity::Kind::root);
    CHECK(forged->ns.empty());
}

TEST_CASE("a malformed identity is refused") {
    const auto error = [](const json& j) {
        auto id = WorkloadIdentity::fromJson(j);
        return id ? std::string("parsed") : id.error().message;
    };
    CHECK(error(json()) == "the request carries no identity");
    CHECK(error(json::array()) == "the request carries no identity");
    CHECK(error(json::object()) == "the identity's integration is missing or unknown");
    CHECK(error({{"integration", "runc"}}) == "the identity's integration is missing or unknown");
    CHECK(error({{"integration", 1}}) == "the identity's integration is missing or unknown");
    CHECK(error({{"integration", "podman"}}) == "the identity's name is missing or invalid");
    CHECK(error({{"integration", "podman"}, {"name", "a b"}}) == "the identity's name is missing or invalid");
    CHECK(error({{"integration", "podman"}, {"name", "web-*"}}) == "the identity's name is missing or invalid");
    CHECK(error({{"integration", "podman"}, {"name", std::string(254, 'a')}}) == "the identity's name is missing or invalid");
    json k = {{"integration", "containerd-cri"}, {"namespace", "a"}, {"pod", "p"}, {"pod_uid", "u"}, {"container", "c"}};
    CHECK(error(k) == "parsed");
    for (const char* key : {"namespace", "pod", "pod_uid", "container"}) {
        json missing = k;
        missing.erase(key);
        CHECK(error(missing) == std::string("the identity's ") + key + " is missing or invalid");
        json bad = k;
        bad[key] = "x\ny";
        CHECK(error(bad) == std::string("the identity's ") + key + " is missing or invalid");
    }
    k["image"] = 5;
    CHECK(error(k) == "the identity's image is invalid");
}
