#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "plugin/agent/local_source.hpp"
#include "tests/unit/plugin/store/store_test_support.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using secretshim::test::TempDir;

namespace {

const std::string kMarker = "local-source-MARKER-2b7c-do-not-leak";

std::unique_ptr<LocalSource> openSource(const std::string& dir, std::vector<std::string>* problems = nullptr) {
    std::vector<std::string> local;
    auto source = LocalSource::open(dir, {}, problems ? *problems : local);
    REQUIRE_MESSAGE(source.has_value(), (source ? "" : source.error().message));
    return std::move(*source);
}

GrantRule rule(const char* text) { return *GrantRule::parse(text); }

mountfs::Bytes bytes(const std::string& s) { return {reinterpret_cast<const unsigned char*>(s.data()), s.size()}; }

WorkloadIdentity root() { return WorkloadIdentity{}; }

WorkloadIdentity kube(const std::string& ns) {
    WorkloadIdentity id;
    id.kind = WorkloadIdentity::Kind::kubernetes;
    id.integration = Integration::containerdCri;
    id.ns = ns;
    id.pod = "web";
    id.podUid = "u";
    id.container = "app";
    return id;
}

std::string refusal(LocalSource& source, const WorkloadIdentity& who, const std::string& request) {
    auto granted = source.grant(who, request, "");
    return granted ? std::string("granted") : granted.error().message;
}

// Everything the payloads produce for entry `index`.
std::string produced(const mountfs::PayloadSource& payloads, std::size_t index) {
    struct Sink : mountfs::PayloadSink {
        std::string got;
        Result<void> write(mountfs::Bytes piece) override {
            got.append(reinterpret_cast<const char*>(piece.data()), piece.size());
            return {};
        }
    } sink;
    REQUIRE(payloads.produce(index, sink).has_value());
    return sink.got;
}

}  // namespace

TEST_CASE("a secret created without a grant reaches nobody") {
    TempDir tmp;
    auto source = openSource(tmp.path());
    REQUIRE(source->create("db", bytes(kMarker), {}).has_value());
    CHECK(source->rules("db")->empty());
    CHECK(refusal(*source, root(), "db") == "secret \"db\" is not granted to a container started by root (bundle)");
    CHECK(refusal(*source, kube("tenant-a"), "db") == "secret \"db\" is not granted to kubernetes pod tenant-a/web container app");
}

TEST_CASE("an ungranted secret and a missing one get the same line") {
    TempDir tmp;
    auto source = openSource(tmp.path());
    REQUIRE(source->create("db", bytes(kMarker), {rule("kubernetes,namespace=tenant-a")}).has_value());
    const std::string ungranted = refusal(*source, kube("tenant-b"), "db");
    const std::string missing = refusal(*source, kube("tenant-b"), "nosuch");
    CHECK(ungranted == "secret \"db\" is not granted to kubernetes pod tenant-b/web container app");
    CHECK(missing == "secret \"nosuch\" is not granted to kubernetes pod tenant-b/web container app");
    // Even with another, granted secret in the same request.
    CHECK(refusal(*source, kube("tenant-a"), "db;nosuch") ==
          "secret \"nosuch\" is not granted to kubernetes pod tenant-a/web container app");
}

TEST_CASE("a granted request gets exactly its references and their values") {
    TempDir tmp;
    auto source = openSource(tmp.path());
    REQUIRE(source->create("db", bytes(kMarker), {rule("root")}).has_value());
    REQUIRE(source->create("api", bytes("api-value"), {rule("root")}).has_value());
    auto granted = source->grant(root(), "db;source=api,target=/etc/k,mode=0400;source=db,target=again", "");
    REQUIRE_MESSAGE(granted.has_value(), (granted ? "" : granted.error().message));
    CHECK(granted->specs == "db;source=api,target=/etc/k,mode=0400;source=db,target=again");
    REQUIRE(granted->refs.size() == 3);
    CHECK(granted->claim.empty());
    REQUIRE(granted->payloads->count() == 3);
    CHECK(produced(*granted->payloads, 0) == kMarker);
    CHECK(produced(*granted->payloads, 1) == "api-value");
    CHECK(produced(*granted->payloads, 2) == kMarker);
    CHECK(granted->payloads->size(1) == 9);
}

TEST_CASE("pins hold per reference; io.secretshim.task needs the cluster") {
    TempDir tmp;
    auto source = openSource(tmp.path());
    REQUIRE(source->create("db", bytes(kMarker), {rule("root,target=/etc/app/pw,mode=0400")}).has_value());
    CHECK(refusal(*source, root(), "source=db,target=/etc/app/pw,mode=0400") == "granted");
    CHECK(refusal(*source, root(), "source=db,target=/etc/app/pw,mode=0444") ==
          "secret \"db\" is not granted to a container started by root (bundle)");
    CHECK(refusal(*source, root(), "db") == "secret \"db\" is not granted to a container started by root (bundle)");
    auto task = source->grant(root(), "", "t1");
    REQUIRE_FALSE(task.has_value());
    CHECK(task.error().message == "the annotation io.secretshim.task needs an agent with source: etcd");
}

TEST_CASE("grant and revoke: persisted, refused when they would change nothing") {
    TempDir tmp;
    {
        auto source = openSource(tmp.path());
        REQUIRE(source->create("db", bytes(kMarker), {}).has_value());
        REQUIRE(source->addGrant("db", rule("kubernetes,namespace=tenant-a,pod=web-*")).has_value());
        REQUIRE(source->addGrant("db", rule("podman,name=web")).has_value());
        auto again = source->addGrant("db", rule("kubernetes,pod=web-*,namespace=tenant-a"));
        REQUIRE_FALSE(again.has_value());
        CHECK(again.error().message == "secret \"db\" is already granted to kubernetes,namespace=tenant-a,pod=web-*");
        REQUIRE(source->revokeGrant("db", rule("podman,name=web")).has_value());
        auto gone = source->revokeGrant("db", rule("podman,name=web"));
        REQUIRE_FALSE(gone.has_value());
        CHECK(gone.error().message == "secret \"db\" has no grant podman,name=web");
        CHECK(source->addGrant("nosuch", rule("root")).error().message == "secret \"nosuch\" does not exist");
        struct stat st {};
        REQUIRE(::stat((tmp.path() + "/secrets/db.grants").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
    }
    auto reopened = openSource(tmp.path());
    REQUIRE(reopened->rules("db")->size() == 1);
    CHECK(reopened->rules("db")->at(0).text() == "kubernetes,namespace=tenant-a,pod=web-*");
    CHECK(refusal(*reopened, kube("tenant-a"), "db") == "secret \"db\" is not granted to kubernetes pod tenant-a/web container app");
}

TEST_CASE("a removed secret takes its grants along; a new secret of that name starts with none") {
    TempDir tmp;
    auto source = openSource(tmp.path());
    REQUIRE(source->create("db", bytes(kMarker), {rule("root")}).has_value());
    REQUIRE(source->remove("db").has_value());
    REQUIRE(source->create("db", bytes("new"), {}).has_value());
    CHECK(refusal(*source, root(), "db") == "secret \"db\" is not granted to a container started by root (bundle)");
    CHECK(openSource(tmp.path())->rules("db")->empty());
}

TEST_CASE("grants written for an earlier secret of the same name, or unreadable ones, grant nothing") {
    TempDir tmp;
    {
        auto source = openSource(tmp.path());
        REQUIRE(source->create("db", bytes(kMarker), {}).has_value());
        REQUIRE(source->create("api", bytes("x"), {}).has_value());
    }
    // A grants file left by a crash between an rm's two unlinks: another id.
    {
        std::ofstream out(tmp.path() + "/secrets/db.grants");
        out << R"({"secret_id":"00000000000000000000000000000000","rules":["root"]})";
    }
    ::chmod((tmp.path() + "/secrets/db.grants").c_str(), 0600);
    {
        std::ofstream out(tmp.path() + "/secrets/api.grants");
        out << R"({"secret_id":"x","rules":"root"})";
    }
    ::chmod((tmp.path() + "/secrets/api.grants").c_str(), 0600);
    std::vector<std::string> problems;
    auto source = openSource(tmp.path(), &problems);
    CHECK(refusal(*source, root(), "db") == "secret \"db\" is not granted to a container started by root (bundle)");
    CHECK(refusal(*source, root(), "api") == "secret \"api\" is not granted to a container started by root (bundle)");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "secret api reaches nobody: grants file " + tmp.path() + "/secrets/api.grants is not a grants file");
}

TEST_CASE("a rotated secret keeps its grants (also after a restart) and grants the new value") {
    TempDir tmp;
    const std::string next = "local-source-NEXT-9e41";
    {
        auto source = openSource(tmp.path());
        auto created = source->create("db", bytes(kMarker), {rule("root")}, {{"tier", "db"}});
        REQUIRE(created.has_value());
        auto rotated = source->rotate("db", bytes(next));
        REQUIRE(rotated.has_value());
        CHECK(rotated->id == created->id);
        CHECK(rotated->version == 2);
        CHECK(source->ruleTexts("db") == std::vector<std::string>{"root"});
    }
    auto source = openSource(tmp.path());
    CHECK(source->ruleTexts("db") == std::vector<std::string>{"root"});
    auto meta = source->inspect("db");
    REQUIRE(meta.has_value());
    CHECK(meta->labels == SecretLabels{{"tier", "db"}});
    auto granted = source->grant(root(), "db", "");
    REQUIRE(granted.has_value());
    const bool same = produced(*granted->payloads, 0) == next;  // compared, never printed
    CHECK(same);
    auto value = source->value("db");
    REQUIRE(value.has_value());
    CHECK(secretshim::plugin::test::sameBytes(value->span(), next));
}
