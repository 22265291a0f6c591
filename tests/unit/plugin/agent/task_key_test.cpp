// A task's key and its stable name: the same container id in two containerd
// namespaces is two tasks, each with a name of its own that is safe as a
// file name and as a systemd FDNAME.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "plugin/agent/task_key.hpp"
#include "plugin/agent/task_records.hpp"
#include "tests/support/sha256_hex.hpp"

using namespace secretshim::plugin;

namespace {

// SHA-256 in hex, computed here independently of the library.
std::string hexOf(const std::string& text) { return secretshim::test::sha256Hex(text); }

// systemd's rule for an FDNAME (fdname_is_valid) narrowed to ours: what the
// fd store and a file name both accept.
bool safeName(const std::string& name) {
    return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
           name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
               std::string::npos;
}

constexpr const char* kNs1 = "/run/containerd/io.containerd.runtime.v2.task/ns1/web";
constexpr const char* kNs2 = "/run/containerd/io.containerd.runtime.v2.task/ns2/web";

}  // namespace

TEST_CASE("the same id in two namespaces: two keys, two names") {
    const TaskKey a{"web", kNs1};
    const TaskKey b{"web", kNs2};
    CHECK(a != b);
    CHECK(a.storeName() != b.storeName());
    std::map<TaskKey, int> tasks{{a, 1}, {b, 2}};
    CHECK(tasks.size() == 2);
    CHECK(tasks.at(a) == 1);
    CHECK(tasks.at(b) == 2);
}

TEST_CASE("keys sort by id, then bundle: the tasks with one id are adjacent") {
    const std::set<TaskKey> keys{{"b", "/x"}, {"a", "/z"}, {"b", ""}, {"a", "/y"}, {"c", "/a"}};
    std::string order;
    for (const auto& k : keys) order += k.id + k.bundle + " ";
    CHECK(order == "a/y a/z b b/x c/a ");
}

TEST_CASE("the name: the id's SHA-256 without a bundle (as records always were), else of id, NUL, bundle") {
    CHECK(TaskKey{"web", ""}.storeName() == hexOf("web"));
    CHECK(TaskKey{"web", kNs1}.storeName() == hexOf(std::string("web") + '\0' + kNs1));
    // Stable: the same key, the same name, whenever it is asked.
    CHECK(TaskKey{"web", kNs1}.storeName() == TaskKey{"web", kNs1}.storeName());
    // The separator keeps the id and the bundle apart.
    CHECK(TaskKey{"ab", "/c"}.storeName() != TaskKey{"a", "b/c"}.storeName());
}

TEST_CASE("the name is safe as a file name and a systemd FDNAME, whatever the id and bundle hold") {
    const std::string hostile[] = {"a/b c/../\xc3\xa9t\xc3\xa9", std::string(300, 'k'), "x:y\n=z", "..", "-", ""};
    for (const auto& id : hostile)
        for (const auto& bundle : hostile) {
            const std::string name = TaskKey{id, bundle}.storeName();
            CHECK(name.size() == 64);
            CHECK(safeName(name));
            CHECK(name.find_first_not_of("0123456789abcdef") == std::string::npos);
        }
}

TEST_CASE("a record's key and name are its id and bundle's") {
    TaskRecord r{"web", 1, 2, "db"};
    CHECK(r.key() == TaskKey{"web", ""});
    CHECK(r.storeName() == hexOf("web"));
    r.bundle = kNs2;
    CHECK(r.key() == TaskKey{"web", kNs2});
    CHECK(r.storeName() == TaskKey{"web", kNs2}.storeName());
}
