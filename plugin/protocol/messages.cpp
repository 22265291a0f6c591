#include "plugin/protocol/messages.hpp"

#include <limits>
#include <utility>

namespace secretshim::plugin {

using nlohmann::json;

namespace {

// Each reader leaves `out` as it is when the field is missing and refuses a
// field of another type: nlohmann's get<>() would throw.
Error wrongType(const char* key, const char* type) {
    return Error{.message = std::string("malformed message: \"") + key + "\" is not " + type};
}

Result<void> read(const json& j, const char* key, std::string& out) {
    const auto it = j.find(key);
    if (it == j.end()) return {};
    if (!it->is_string()) return tl::unexpected(wrongType(key, "a string"));
    out = it->get<std::string>();
    return {};
}

Result<void> read(const json& j, const char* key, std::optional<std::string>& out) {
    const auto it = j.find(key);
    if (it == j.end()) return {};
    if (!it->is_string()) return tl::unexpected(wrongType(key, "a string"));
    out = it->get<std::string>();
    return {};
}

Result<void> read(const json& j, const char* key, bool& out) {
    const auto it = j.find(key);
    if (it == j.end()) return {};
    if (!it->is_boolean()) return tl::unexpected(wrongType(key, "true or false"));
    out = it->get<bool>();
    return {};
}

template <typename Int>
Result<void> readInt(const json& j, const char* key, Int& out) {
    const auto it = j.find(key);
    if (it == j.end()) return {};
    // is_number_integer() holds for unsigned too; get<>() of a value out of
    // range would wrap, so check the range first.
    if (!it->is_number_integer()) return tl::unexpected(wrongType(key, "an integer"));
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
            return tl::unexpected(wrongType(key, "an integer in range"));
        out = static_cast<Int>(v);
        return {};
    }
    const auto v = it->get<std::int64_t>();
    if (v < 0 && !std::numeric_limits<Int>::is_signed) return tl::unexpected(wrongType(key, "an integer in range"));
    out = static_cast<Int>(v);
    return {};
}

Result<void> read(const json& j, const char* key, std::uint64_t& out) { return readInt(j, key, out); }
Result<void> read(const json& j, const char* key, std::int64_t& out) { return readInt(j, key, out); }

Result<void> read(const json& j, const char* key, std::optional<std::uint64_t>& out) {
    if (!j.contains(key)) return {};
    std::uint64_t v = 0;
    if (auto ok = readInt(j, key, v); !ok) return ok;
    out = v;
    return {};
}

Result<void> read(const json& j, const char* key, std::vector<std::string>& out) {
    const auto it = j.find(key);
    if (it == j.end()) return {};
    if (!it->is_array()) return tl::unexpected(wrongType(key, "a list"));
    out.clear();
    for (const auto& item : *it) {
        if (!item.is_string()) return tl::unexpected(wrongType(key, "a list of strings"));
        out.push_back(item.get<std::string>());
    }
    return {};
}

Result<void> read(const json& j, const char* key, std::map<std::string, std::string>& out) {
    const auto it = j.find(key);
    if (it == j.end()) return {};
    if (!it->is_object()) return tl::unexpected(wrongType(key, "an object"));
    out.clear();
    for (const auto& [k, v] : it->items()) {
        if (!v.is_string()) return tl::unexpected(wrongType(key, "an object of strings"));
        out.emplace(k, v.get<std::string>());
    }
    return {};
}

// Reads every field of `j` into `out` (each a key and a member), or says
// which one is wrong. A message that is not an object has no fields.
template <typename T, typename... Fields>
Result<T> readAll(const json& j, T out, Fields... fields) {
    if (!j.is_object()) return fail("malformed message (not a JSON object)");
    Result<void> ok;
    ((ok = ok ? read(j, fields.first, out.*(fields.second)) : ok), ...);
    if (!ok) return propagate(ok);
    return out;
}

template <typename T, typename M>
std::pair<const char*, M T::*> field(const char* key, M T::*member) {
    return {key, member};
}

template <typename T>
Result<std::vector<T>> readList(const json& j, const char* key) {
    std::vector<T> out;
    const auto it = j.find(key);
    if (it == j.end()) return out;
    if (!it->is_array()) return tl::unexpected(wrongType(key, "a list"));
    for (const auto& item : *it) {
        auto one = T::fromJson(item);
        if (!one) return propagate(one);
        out.push_back(std::move(*one));
    }
    return out;
}

template <typename T>
json listJson(const std::vector<T>& items) {
    json out = json::array();
    for (const auto& item : items) out.push_back(item.toJson());
    return out;
}

}  // namespace

std::string opOf(const json& message) {
    const auto it = message.is_object() ? message.find("op") : message.end();
    return it != message.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Error unknownOp(std::string_view op) { return Error{.message = "unknown request " + quote(std::string(op.substr(0, 64)))}; }

json CreateRequest::toJson() const {
    json j = {{"op", op::create}, {"id", id}, {"secrets", secrets}};
    if (!bundle.empty()) j["bundle"] = bundle;
    if (!root.empty()) j["root"] = root;
    if (!task.empty()) j["task"] = task;
    if (!identity.is_null()) j["identity"] = identity;
    if (nri) j["nri"] = true;
    return j;
}

Result<CreateRequest> CreateRequest::fromJson(const json& j) {
    auto out = readAll(j, CreateRequest{}, field("id", &CreateRequest::id), field("bundle", &CreateRequest::bundle),
                       field("root", &CreateRequest::root), field("secrets", &CreateRequest::secrets),
                       field("task", &CreateRequest::task), field("nri", &CreateRequest::nri));
    if (out)
        if (const auto who = j.find("identity"); who != j.end()) out->identity = *who;
    return out;
}

json NriCreateRequest::toJson() const {
    return {{"op", op::nriCreate}, {"id", id}, {"secrets", secrets}, {"task", task}, {"identity", identity}};
}

Result<NriCreateRequest> NriCreateRequest::fromJson(const json& j) {
    auto out = readAll(j, NriCreateRequest{}, field("id", &NriCreateRequest::id),
                       field("secrets", &NriCreateRequest::secrets), field("task", &NriCreateRequest::task));
    if (out)
        if (const auto who = j.find("identity"); who != j.end()) out->identity = *who;
    return out;
}

json NriStopRequest::toJson() const { return {{"op", op::nriStop}, {"id", id}}; }

Result<NriStopRequest> NriStopRequest::fromJson(const json& j) {
    return readAll(j, NriStopRequest{}, field("id", &NriStopRequest::id));
}

json CreateReply::toJson() const {
    json list = json::array();
    for (const auto& m : mounts) list.push_back({{"target", m.target}, {"directory", m.directory}});
    return okReply({{"files", files}, {"mounts", std::move(list)}});
}

Result<CreateReply> CreateReply::fromJson(const json& j) {
    auto out = readAll(j, CreateReply{}, field("files", &CreateReply::files));
    if (!out) return out;
    const auto list = j.find("mounts");
    if (list == j.end()) return out;
    if (!list->is_array()) return tl::unexpected(wrongType("mounts", "a list"));
    for (const auto& m : *list) {
        auto one = readAll(m, MountInfo{}, field("target", &MountInfo::target),
                           field("directory", &MountInfo::directory));
        if (!one) return propagate(one);
        out->mounts.push_back(std::move(*one));
    }
    return out;
}

json AttachedRequest::toJson() const {
    json j = {{"op", op::attached}, {"ok", ok}, {"locked", locked}};
    if (!error.empty()) j["error"] = error;
    return j;
}

Result<AttachedRequest> AttachedRequest::fromJson(const json& j) {
    return readAll(j, AttachedRequest{}, field("ok", &AttachedRequest::ok), field("error", &AttachedRequest::error),
                   field("locked", &AttachedRequest::locked));
}

json ReleaseRequest::toJson() const {
    json j = {{"op", op::release}, {"id", id}};
    if (!bundle.empty()) j["bundle"] = bundle;
    if (!root.empty()) j["root"] = root;
    return j;
}

Result<ReleaseRequest> ReleaseRequest::fromJson(const json& j) {
    return readAll(j, ReleaseRequest{}, field("id", &ReleaseRequest::id), field("bundle", &ReleaseRequest::bundle),
                   field("root", &ReleaseRequest::root));
}

json SecretCreateRequest::toJson() const {
    json j = {{"op", rotate ? op::secretRotate : op::secretCreate}, {"name", name}};
    if (!rotate) j["grants"] = grants;
    if (size) j["size"] = *size;
    if (!labels.empty()) j["labels"] = labels;
    return j;
}

Result<SecretCreateRequest> SecretCreateRequest::fromJson(const json& j) {
    auto out = readAll(j, SecretCreateRequest{}, field("name", &SecretCreateRequest::name),
                       field("grants", &SecretCreateRequest::grants), field("size", &SecretCreateRequest::size),
                       field("labels", &SecretCreateRequest::labels));
    if (out) out->rotate = opOf(j) == op::secretRotate;
    return out;
}

json SecretDataMessage::toJson() const { return {{"op", op::secretData}, {"hex", hex}}; }

Result<SecretDataMessage> SecretDataMessage::fromJson(const json& j) {
    if (opOf(j) != op::secretData) return fail("expected the secret's data");
    return readAll(j, SecretDataMessage{}, field("hex", &SecretDataMessage::hex));
}

json SecretGrantRequest::toJson() const {
    return {{"op", revoke ? op::secretRevoke : op::secretGrant}, {"name", name}, {"rule", rule}};
}

Result<SecretGrantRequest> SecretGrantRequest::fromJson(const json& j) {
    auto out = readAll(j, SecretGrantRequest{}, field("name", &SecretGrantRequest::name),
                       field("rule", &SecretGrantRequest::rule));
    if (out) out->revoke = opOf(j) == op::secretRevoke;
    return out;
}

json SecretNameRequest::toJson() const {
    json j = {{"op", op}};
    if (!name.empty()) j["name"] = name;
    return j;
}

Result<SecretNameRequest> SecretNameRequest::fromJson(const json& j) {
    auto out = readAll(j, SecretNameRequest{}, field("name", &SecretNameRequest::name));
    if (!out) return out;
    const std::string o = opOf(j);
    out->op = o == op::secretLs ? op::secretLs : o == op::secretInspect ? op::secretInspect : op::secretRm;
    return out;
}

json TaskListRequest::toJson() const {
    json j = {{"op", op::taskLs}};
    if (!after.empty() || afterBundle) j["after"] = after;
    if (afterBundle) j["after_bundle"] = *afterBundle;
    return j;
}

Result<TaskListRequest> TaskListRequest::fromJson(const json& j) {
    return readAll(j, TaskListRequest{}, field("after", &TaskListRequest::after),
                   field("after_bundle", &TaskListRequest::afterBundle));
}

json SecretInfo::toJson() const {
    return {{"name", name},       {"id", id},           {"size", size},     {"created", created},
            {"grants", grants},   {"tasks", tasks},     {"version", version}, {"updated", updated},
            {"labels", labels}};
}

Result<SecretInfo> SecretInfo::fromJson(const json& j) {
    return readAll(j, SecretInfo{}, field("name", &SecretInfo::name), field("id", &SecretInfo::id),
                   field("size", &SecretInfo::size), field("created", &SecretInfo::created),
                   field("grants", &SecretInfo::grants), field("tasks", &SecretInfo::tasks),
                   field("version", &SecretInfo::version), field("updated", &SecretInfo::updated),
                   field("labels", &SecretInfo::labels));
}

json TaskInfo::toJson() const { return {{"id", id}, {"bundle", bundle}, {"secrets", secrets}}; }

Result<TaskInfo> TaskInfo::fromJson(const json& j) {
    return readAll(j, TaskInfo{}, field("id", &TaskInfo::id), field("bundle", &TaskInfo::bundle),
                   field("secrets", &TaskInfo::secrets));
}

json SecretListReply::toJson() const { return okReply({{"secrets", listJson(secrets)}}); }

Result<SecretListReply> SecretListReply::fromJson(const json& j) {
    auto list = readList<SecretInfo>(j, "secrets");
    if (!list) return propagate(list);
    return SecretListReply{std::move(*list)};
}

json TaskListReply::toJson() const { return okReply({{"tasks", listJson(tasks)}, {"more", more}}); }

Result<TaskListReply> TaskListReply::fromJson(const json& j) {
    auto out = readAll(j, TaskListReply{}, field("more", &TaskListReply::more));
    if (!out) return out;
    auto list = readList<TaskInfo>(j, "tasks");
    if (!list) return propagate(list);
    out->tasks = std::move(*list);
    return out;
}

bool TaskPageBuilder::add(TaskInfo task) {
    const std::size_t size = task.toJson().dump().size() + 1;  // and a comma
    if (!page_.tasks.empty() && used_ + size > budget_) {
        page_.more = true;
        return false;
    }
    used_ += size;
    page_.tasks.push_back(std::move(task));
    return true;
}

Result<TaskListReply> collectTasks(const std::function<Result<json>(const json&)>& call) {
    TaskListReply all;
    TaskListRequest request;
    for (;;) {
        auto reply = call(request.toJson());
        if (!reply) return propagate(reply);
        auto page = TaskListReply::fromJson(*reply);
        if (!page) return fail("malformed reply from the agent: " + page.error().message);
        for (auto& t : page->tasks) all.tasks.push_back(std::move(t));
        if (!page->more || page->tasks.empty()) break;
        // Each page starts past the last: a reply that does not would loop.
        const TaskInfo& last = all.tasks.back();
        if (request.afterBundle && std::pair(last.id, last.bundle) <= std::pair(request.after, *request.afterBundle))
            return fail("malformed reply from the agent");
        request = TaskListRequest{last.id, last.bundle};
    }
    return all;
}

json okReply(json body) {
    body["ok"] = true;
    return body;
}

json errorReply(const std::string& message) { return {{"ok", false}, {"error", message}}; }

Result<const json*> checkOk(const json& reply, std::string_view fallback) {
    const auto ok = reply.find("ok");
    if (ok != reply.end() && ok->is_boolean() && ok->get<bool>()) return &reply;
    const auto e = reply.find("error");
    const bool said = e != reply.end() && e->is_string() && !e->get_ref<const std::string&>().empty();
    return fail(said ? e->get<std::string>() : std::string(fallback));
}

}  // namespace secretshim::plugin
