// The agent's protocol, on both platforms: one request or reply per
// message, a JSON object of at most kMaxMessage bytes. The transport is the
// platform's: on Linux a SOCK_SEQPACKET unix socket (boundaries kept by the
// kernel, so no length prefix; fds travel with a message by SCM_RIGHTS;
// peers must be root, SO_PEERCRED; plugin/protocol/channel.hpp), on Windows
// a message-mode named pipe (no handles travel; only Administrators and
// SYSTEM; plugin/windows/pipe_channel.hpp).
//
//   hook -> agent  {"op":"create","id":ID,"secrets":ANNOTATION,...}  (CreateRequest)
//                  Linux: + the init's pidfd; Windows: + "root"
//   agent -> hook  {"ok":true,"files":N,"mounts":[{"target":T,"directory":B}...]}
//                  Linux: + one read-only mount fd per mount; Windows: no
//                  mounts, the agent wrote the files itself
//   hook -> agent  {"op":"attached","ok":B,"error":E,"locked":B}   (Linux)
//                  ("locked": the hook locked the mounts' flags, userns_lock.hpp)
//   agent -> hook  {"ok":true}
//   hook -> agent  {"op":"release","id":ID,"bundle":BUNDLE}  (Linux: poststop; the
//                  hook sends it and closes: the agent's {"ok":true} is for other
//                  clients. It flushes the task with that id and bundle. Without a
//                  bundle (a hook older than bundles): the task with that id
//                  if exactly one runs, else none; every task is flushed
//                  when its init exits anyway. Windows: + "root", and the
//                  reply says "cleaned":B, false when nothing was there)
//   ctl -> agent   {"op":"secret.create","name":N,"grants":[RULE...],"labels":{K:V...}}
//                  Linux: + a sealed memfd holding the value; Windows: + "size":S,
//                  then {"op":"secret.data","hex":H} until S bytes came
//   agent -> ctl   {"ok":true,"id":ID}
//   ctl -> agent   {"op":"secret.rotate","name":N}, its value as secret.create's
//   agent -> ctl   {"ok":true,"id":ID,"version":V,"updated":C,"failed":F}
//                  (C running containers got the new value, F did not)
//   ctl -> agent   {"op":"secret.grant"|"secret.revoke","name":N,"rule":RULE} (Linux)
//                  {"op":"secret.ls"}, {"op":"secret.inspect","name":N}
//                    -> {"ok":true,"secrets":[SecretInfo...]}
//                  {"op":"secret.rm","name":N}, {"op":"status"} (the platform's
//                  facts), {"op":"task.ls","after":ID,"after_bundle":BUNDLE}
//                    -> {"ok":true,"tasks":[TaskInfo...],"more":B}  (paged on Linux:
//                  plugin/agent/task_list.hpp)
//   any failure    {"ok":false,"error":ONE_LINE}
//
// Each message has a struct here; fromJson() refuses a field of the wrong
// type with one line ("malformed request: ..."), never throws, and leaves a
// missing field at its default (older peers omit newer fields).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

inline constexpr std::size_t kMaxMessage = 64 * 1024;
inline constexpr std::string_view kDefaultSocket = "/run/secretshim/agent.sock";
inline constexpr std::string_view kSecretsAnnotation = "io.secretshim.secrets";
// Cluster mode: ties a container to its task's assignment in etcd.
inline constexpr std::string_view kTaskAnnotation = "io.secretshim.task";
// NRI: set by secretshim-nri on a container the agent was told about, so
// that the hook it injects passes its fast path (one of ours is present).
inline constexpr std::string_view kNriAnnotation = "io.secretshim.nri";

// The op names: the hook's bare verbs, the admin's noun.verb.
namespace op {
inline constexpr std::string_view create = "create";
inline constexpr std::string_view attached = "attached";
inline constexpr std::string_view release = "release";
inline constexpr std::string_view secretCreate = "secret.create";
inline constexpr std::string_view secretData = "secret.data";
inline constexpr std::string_view secretRotate = "secret.rotate";
inline constexpr std::string_view secretGrant = "secret.grant";
inline constexpr std::string_view secretRevoke = "secret.revoke";
inline constexpr std::string_view secretLs = "secret.ls";
inline constexpr std::string_view secretInspect = "secret.inspect";
inline constexpr std::string_view secretRm = "secret.rm";
inline constexpr std::string_view status = "status";
inline constexpr std::string_view taskLs = "task.ls";
inline constexpr std::string_view nriCreate = "nri.create";
inline constexpr std::string_view nriStop = "nri.stop";
}  // namespace op

// A request's "op" ("" when missing or not a string).
std::string opOf(const nlohmann::json& message);
// What an agent answers to an op it does not serve (at most 64 bytes of it).
Error unknownOp(std::string_view op);

struct CreateRequest {
    std::string id;        // the container (Linux) or task (Windows) id
    std::string bundle;    // Linux: the OCI bundle; with the id it names the task (plugin/agent/task_key.hpp)
    std::string root;      // Windows: the container's filesystem root
    std::string secrets;   // the specs, ';'-separated (the annotation's value)
    std::string task;      // Linux, cluster mode: io.secretshim.task
    nlohmann::json identity;  // Linux: plugin/identity/workload_identity.hpp
    // Linux: the agent was told who the container is and what it asks for
    // by secretshim-nri (NriCreateRequest): identity, secrets and task are
    // empty and the agent uses what it was told.
    bool nri = false;
    nlohmann::json toJson() const;
    static Result<CreateRequest> fromJson(const nlohmann::json& j);
};

// secretshim-nri, at the runtime's CreateContainer: who the container is
// (as the runtime reports it) and what its pod asks for it. The agent
// refuses what it would not grant, and otherwise keeps it for the hook's
// create of the same id.
struct NriCreateRequest {
    std::string id;
    std::string secrets;
    std::string task;
    nlohmann::json identity;
    nlohmann::json toJson() const;
    static Result<NriCreateRequest> fromJson(const nlohmann::json& j);
};

// secretshim-nri, at StopContainer or RemoveContainer: forget what the
// container was told and flush its secrets now.
struct NriStopRequest {
    std::string id;
    nlohmann::json toJson() const;
    static Result<NriStopRequest> fromJson(const nlohmann::json& j);
};

struct MountInfo {
    std::string target;
    bool directory = false;
};

struct CreateReply {
    std::size_t files = 0;          // secret files the view holds
    std::vector<MountInfo> mounts;  // Linux: one per fd sent with the reply
    nlohmann::json toJson() const;
    static Result<CreateReply> fromJson(const nlohmann::json& j);
};

struct AttachedRequest {
    bool ok = false;
    std::string error;
    bool locked = false;
    nlohmann::json toJson() const;
    static Result<AttachedRequest> fromJson(const nlohmann::json& j);
};

struct ReleaseRequest {
    std::string id;
    std::string bundle;  // Linux ("" from a hook older than bundles)
    std::string root;    // Windows: checked against the task's
    nlohmann::json toJson() const;
    static Result<ReleaseRequest> fromJson(const nlohmann::json& j);
};

// secret.create, and secret.rotate (a new value for an existing secret: no
// grants, no labels).
struct SecretCreateRequest {
    std::string name;
    std::vector<std::string> grants;   // Linux: grant rules
    std::optional<std::uint64_t> size;  // Windows: bytes to come in secret.data
    std::map<std::string, std::string> labels;
    bool rotate = false;
    nlohmann::json toJson() const;
    static Result<SecretCreateRequest> fromJson(const nlohmann::json& j);
};

// Windows: a piece of a secret's value, hex-encoded (no fd passing there).
struct SecretDataMessage {
    std::string hex;
    nlohmann::json toJson() const;
    static Result<SecretDataMessage> fromJson(const nlohmann::json& j);
};

// secret.grant and secret.revoke.
struct SecretGrantRequest {
    bool revoke = false;
    std::string name;
    std::string rule;
    nlohmann::json toJson() const;
    static Result<SecretGrantRequest> fromJson(const nlohmann::json& j);
};

// secret.ls (every secret: name empty), secret.inspect and secret.rm (one).
struct SecretNameRequest {
    std::string_view op;
    std::string name;
    nlohmann::json toJson() const;
    static Result<SecretNameRequest> fromJson(const nlohmann::json& j);
};

struct TaskListRequest {
    std::string after;
    std::optional<std::string> afterBundle;  // absent from a client older than bundles
    nlohmann::json toJson() const;
    static Result<TaskListRequest> fromJson(const nlohmann::json& j);
};

// What secret.ls and secret.inspect tell of a secret (never its value).
struct SecretInfo {
    std::string name;
    std::string id;
    std::uint64_t size = 0;
    std::int64_t created = 0;          // unix seconds
    std::vector<std::string> grants;   // Linux: the rules
    std::vector<std::string> tasks;    // the tasks (container ids) holding it
    std::uint64_t version = 0;         // 0: from an agent older than rotation
    std::int64_t updated = 0;          // unix seconds of the last create or rotation
    std::map<std::string, std::string> labels;
    nlohmann::json toJson() const;
    static Result<SecretInfo> fromJson(const nlohmann::json& j);
};

// What task.ls tells of a running task.
struct TaskInfo {
    std::string id;
    std::string bundle;                // Linux
    std::vector<std::string> secrets;  // the names it holds
    nlohmann::json toJson() const;
    static Result<TaskInfo> fromJson(const nlohmann::json& j);
};

struct SecretListReply {
    std::vector<SecretInfo> secrets;
    nlohmann::json toJson() const;
    static Result<SecretListReply> fromJson(const nlohmann::json& j);
};

struct TaskListReply {
    std::vector<TaskInfo> tasks;
    bool more = false;
    nlohmann::json toJson() const;
    static Result<TaskListReply> fromJson(const nlohmann::json& j);
};

// Room left for a task.ls reply's envelope: {"ok":true,"more":true,"tasks":[...]}.
inline constexpr std::size_t kTaskPageBudget = kMaxMessage - 256;

// Fills one task.ls page: add() takes tasks in order while they fit in
// `budget` bytes of JSON (the first always does: a task's id and names came
// in one message) and, at the first that does not, marks the page as having
// more and returns false.
class TaskPageBuilder {
public:
    explicit TaskPageBuilder(std::size_t budget = kTaskPageBudget) : budget_(budget) {}
    bool add(TaskInfo task);
    const TaskListReply& page() const { return page_; }

private:
    std::size_t budget_;
    std::size_t used_ = 2;  // []
    TaskListReply page_;
};

// Every running task, page by page: asks `call` for the next page after
// the last task it got (its id and bundle: ids repeat across containerd
// namespaces) until "more" is false. An agent older than bundles lists
// none: they read as "". `call` sends a request and returns the reply's
// body once it says ok.
Result<TaskListReply> collectTasks(const std::function<Result<nlohmann::json>(const nlohmann::json&)>& call);

// {"ok":true} and whatever a reply adds; {"ok":false,"error":LINE}.
nlohmann::json okReply(nlohmann::json body = nlohmann::json::object());
nlohmann::json errorReply(const std::string& message);
// A reply's failure as an Error (its "error", or `fallback` without one);
// the reply itself when it says ok.
Result<const nlohmann::json*> checkOk(const nlohmann::json& reply, std::string_view fallback = "refused");

// A reply's body (from a call that checked it ok) as its type, or the
// line that says it is not one.
template <typename Reply>
Result<Reply> replyAs(const Result<nlohmann::json>& reply) {
    if (!reply) return propagate(reply);
    auto out = Reply::fromJson(*reply);
    if (!out) return fail("malformed reply from the agent: " + out.error().message);
    return out;
}

}  // namespace secretshim::plugin
