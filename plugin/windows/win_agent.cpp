#include "plugin/windows/win_agent.hpp"

#include <windows.h>

#include <algorithm>
#include <set>

#include "mountfs/windows_target.hpp"
#include "platform/windows/container_path.hpp"
#include "platform/windows/utf16.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/store/sha256.hpp"
#include "plugin/windows/state_files.hpp"

namespace secretshim::plugin {
namespace {

using nlohmann::json;

constexpr Millis kIdle{30000};   // a client silent this long is dropped
constexpr Millis kReply{10000};
constexpr std::wstring_view kTasksDir = L"\\tasks";
constexpr std::wstring_view kRecordSuffix = L".json";
constexpr std::size_t kMaxTaskRecord = 64 * 1024;

json failure(const Error& error) { return errorReply(error.message); }

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string taskName(const std::string& task) { return "task " + quote(task); }

// Secret names are file names here, and NTFS folds case.
bool sameSecretName(std::string_view a, std::string_view b) { return mountfs::sameWindowsPath(a, b); }

}  // namespace

bool isValidTaskId(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    const auto ok = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
               c == '-';
    };
    return std::all_of(id.begin(), id.end(), ok) && id[0] != '_' && id[0] != '.' && id[0] != '-';
}

bool WinCatalog::sameName(std::string_view a, std::string_view b) const { return sameSecretName(a, b); }

Result<SecretMeta> WinCatalog::create(std::string_view name, mountfs::Bytes value, const std::vector<GrantRule>& rules,
                                      const SecretLabels& labels) {
    if (!rules.empty()) return fail("grant rules are not supported on Windows");  // the core refuses them first
    return store_.create(name, value, labels);
}

WinAgent::WinAgent(WinLocalStore store, platform::WinFs& fs, LogFn log)
    : AgentCore(nullptr, log), store_(std::move(store)), fs_(fs), log_(std::move(log)) {
    setCatalog(&catalog_);
}

Result<std::unique_ptr<WinAgent>> WinAgent::open(WinLocalStore store, platform::WinFs& fs, LogFn log) {
    std::unique_ptr<WinAgent> agent(new WinAgent(std::move(store), fs, std::move(log)));
    if (auto ok = ensurePrivateDirectory(agent->store_.stateDir() + std::wstring(kTasksDir),
                                         agent->store_.descriptor(), ExistingDirectory::asItIs);
        !ok)
        return propagate(ok, "tasks directory");
    if (auto ok = agent->adoptRecords(); !ok) return propagate(ok);
    return agent;
}

Result<std::wstring> WinAgent::recordPath(const std::string& task) const {
    auto digest = sha256Hex(task);
    if (!digest) return propagate(digest);
    return store_.stateDir() + std::wstring(kTasksDir) + L"\\" + std::wstring(digest->begin(), digest->end()) +
           std::wstring(kRecordSuffix);
}

Result<void> WinAgent::adoptRecords() {
    const std::wstring dir = store_.stateDir() + std::wstring(kTasksDir);
    auto names = listFileNames(dir, kRecordSuffix);
    if (!names) return propagate(names);
    for (const std::wstring& name : *names) {
        auto bytes = readWholeFile(dir + L"\\" + name, kMaxTaskRecord);
        if (!bytes) {
            log_("skipping a task record: " + bytes.error().message);
            continue;
        }
        const json record = json::parse(bytes->data(), bytes->data() + bytes->size(), nullptr, false);
        const std::string task = record.is_object() ? stringField(record, "task") : std::string();
        const std::string root = record.is_object() ? stringField(record, "root") : std::string();
        const std::string secrets = record.is_object() ? stringField(record, "secrets") : std::string();
        auto path = recordPath(task);
        if (!isValidTaskId(task) || !path || *path != dir + L"\\" + name) {
            log_("skipping a corrupt task record " + quote(platform::toUtf8(name)));
            continue;
        }
        auto refs = mountfs::parseWindowsSecretRefs(secrets);
        auto layout = refs ? mountfs::planWindowsView(*refs) : propagate(refs);
        auto view = layout ? platform::SymlinkView::adopt(std::move(*layout), {-1, root}, {}, fs_)
                           : propagate(layout);
        if (!view) {
            log_("skipping the record of " + taskName(task) + ": " + view.error().message);
            continue;
        }
        tasks_[task] = Task{root, secrets, std::move(*view)};
        log_("adopted " + taskName(task) + " from its record");
    }
    return {};
}

std::size_t WinAgent::taskCount() {
    std::lock_guard lock(mutex_);
    return tasks_.size();
}

void WinAgent::stop() {
    // Never unlocked: the process exits next, and a request that began
    // now could be cut halfway by that exit.
    requests_.lock();
}

void WinAgent::serve(PipeConnection& connection) {
    for (;;) {
        auto request = connection.receive(kIdle);
        std::shared_lock running(requests_);  // blocks for good once stop() holds it
        if (!request) {
            const int code = request.error().code;
            if (code == ERROR_BROKEN_PIPE) return;
            log_("refused a message: " + request.error().message);
            if (code != ERROR_MORE_DATA && code != ERROR_INVALID_DATA) return;  // timeouts, I/O errors
            if (!connection.send(failure(request.error()), kReply)) return;
            continue;
        }
        if (!connection.send(handle(*request, connection), kReply)) return;
    }
}

json WinAgent::handle(const json& request, PipeConnection& connection) {
    return AgentCore::handle(request,
                             [&](const SecretCreateRequest& create) { return receiveValue(create, connection); });
}

Result<json> WinAgent::platformOp(const std::string& op, const json& request) {
    if (op == op::create) return prepare(request);
    log_("refused a message: " + unknownOp(op).message);
    return tl::unexpected(unknownOp(op));
}

Result<json> WinAgent::prepare(const json& message) {
    auto request = CreateRequest::fromJson(message);
    if (!request) return propagate(request);
    const std::string& task = request->id;
    const std::string& root = request->root;
    const std::string& secrets = request->secrets;
    if (!isValidTaskId(task)) return fail("task id " + quote(task) + " does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
    const auto refuse = [&](const Error& error) {
        log_("prepare " + taskName(task) + " failed: " + error.message);
        return tl::unexpected(wrap(error, taskName(task)));
    };
    if (auto checked = platform::hostRoot(root); !checked) return refuse(checked.error());
    auto refs = mountfs::parseWindowsSecretRefs(secrets);
    if (!refs) return refuse(refs.error());
    if (refs->empty()) return refuse(Error{.message = "no secret specs"});
    auto layout = mountfs::planWindowsView(*refs);
    if (!layout) return refuse(layout.error());

    std::lock_guard lock(mutex_);
    if (tasks_.count(task)) return refuse(Error{.message = "is already prepared (clean it up first)"});
    // Decrypted into locked memory, wiped when this returns: the
    // container's files are the only copy afterwards.
    std::map<std::string, SecureBuffer> plain;
    std::vector<mountfs::Bytes> payloads;
    for (const auto& ref : *refs) {
        if (!plain.count(ref.source)) {
            auto value = store_.load(ref.source);
            if (!value) return refuse(value.error());
            plain.emplace(ref.source, std::move(*value));
        }
    }
    for (const auto& ref : *refs) payloads.push_back(plain.at(ref.source).span());

    auto path = recordPath(task);
    if (!path) return refuse(path.error());
    const std::string record = encodeMessage({{"task", task}, {"root", root}, {"secrets", secrets}});
    const auto recordBytes = std::span(reinterpret_cast<const unsigned char*>(record.data()), record.size());
    if (auto ok = writeFileAtomically(*path, recordBytes, store_.descriptor(), true); !ok)
        return refuse(wrap(ok.error(), "writing the task record"));

    auto view = platform::SymlinkView::build(std::move(*layout), payloads, {}, fs_);
    Result<void> attached = view ? (*view)->attach({-1, root}) : Result<void>(propagate(view));
    if (!attached) {
        // attach() removed what it wrote.
        (void)removeFileIfPresent(*path);
        return refuse(attached.error());
    }
    std::string names;
    for (const auto& ref : *refs) names += (names.empty() ? "" : ", ") + ref.source;
    tasks_[task] = Task{root, secrets, std::move(*view)};
    log_("prepared " + taskName(task) + ": " + std::to_string(refs->size()) + " secret file(s) (" + names + ")");
    return CreateReply{refs->size(), {}}.toJson();
}

Result<json> WinAgent::release(const ReleaseRequest& request) {
    const std::string& task = request.id;
    const std::string& root = request.root;
    if (!isValidTaskId(task)) return fail("task id " + quote(task) + " does not match [A-Za-z0-9][A-Za-z0-9_.-]{0,127}");
    std::lock_guard lock(mutex_);
    const auto it = tasks_.find(task);
    if (it == tasks_.end()) {
        log_("cleanup " + taskName(task) + ": nothing to clean up");
        return json{{"cleaned", false}};
    }
    if (!root.empty()) {
        auto given = platform::hostRoot(root);
        auto recorded = platform::hostRoot(it->second.root);
        if (!given || !recorded || !mountfs::sameWindowsPath(platform::toUtf8(*given), platform::toUtf8(*recorded)))
            return fail(taskName(task) + " was prepared in another root (" + quote(it->second.root) + ")");
    }
    if (auto ok = it->second.view->flush(); !ok) {
        log_("cleanup " + taskName(task) + " failed: " + ok.error().message);
        return propagate(ok, taskName(task));
    }
    auto path = recordPath(task);
    if (!path) return propagate(path);
    if (auto removed = removeFileIfPresent(*path); !removed)
        return propagate(removed, taskName(task) + ": removing its record");
    tasks_.erase(it);
    log_("cleaned up " + taskName(task));
    return json{{"cleaned", true}};
}

Result<SecureBuffer> WinAgent::receiveValue(const SecretCreateRequest& request, PipeConnection& connection) {
    const std::string& name = request.name;
    if (!request.size) return fail("secret.create: no size");
    const std::uint64_t total = *request.size;
    if (auto ok = mountfs::checkPayloadSize(name, total); !ok) return propagate(ok);
    auto value = SecureBuffer::allocate(static_cast<std::size_t>(total));
    if (!value) return propagate(value);
    for (std::size_t done = 0; done < value->size();) {
        auto received = connection.receive(kReply);
        if (!received) return propagate(received, "secret " + quote(name));
        auto chunk = SecretDataMessage::fromJson(*received);
        // The message's text and the chunk's copy of it are both wiped.
        if (auto hex = received->find("hex"); hex != received->end() && hex->is_string())
            ::SecureZeroMemory(hex->get_ref<std::string&>().data(), hex->get_ref<std::string&>().size());
        if (!chunk) return fail("secret " + quote(name) + ": expected its data");
        std::string& text = chunk->hex;
        const bool fits = text.size() % 2 == 0 && text.size() / 2 <= value->size() - done && !text.empty();
        bool valid = fits;
        for (std::size_t i = 0; valid && i < text.size(); i += 2) {
            const int hi = hexDigit(text[i]);
            const int lo = hexDigit(text[i + 1]);
            valid = hi >= 0 && lo >= 0;
            if (valid) value->data()[done + i / 2] = static_cast<unsigned char>(hi << 4 | lo);
        }
        const std::size_t got = text.size() / 2;
        ::SecureZeroMemory(text.data(), text.size());
        if (!valid) return fail("secret " + quote(name) + ": malformed data");
        done += got;
    }
    return value;
}

std::vector<std::string> WinAgent::tasksHolding(const std::string& name) const {
    std::vector<std::string> users;
    for (const auto& [task, state] : tasks_)
        for (const auto& entry : state.view->layout().entries)
            if (sameSecretName(entry.ref.source, name)) {
                users.push_back(task);
                break;
            }
    return users;
}

// In pages that fit a message, by task id, as on Linux
// (plugin/agent/task_list.hpp; a task here has no bundle).
Result<json> WinAgent::listTasks(const TaskListRequest& request) {
    std::lock_guard lock(mutex_);
    TaskPageBuilder page;
    for (auto it = request.after.empty() ? tasks_.begin() : tasks_.upper_bound(request.after); it != tasks_.end();
         ++it) {
        TaskInfo entry{it->first, "", {}};
        for (const auto& e : it->second.view->layout().entries)
            if (std::find(entry.secrets.begin(), entry.secrets.end(), e.ref.source) == entry.secrets.end())
                entry.secrets.push_back(e.ref.source);
        if (!page.add(std::move(entry))) break;
    }
    return page.page().toJson();
}

Result<json> WinAgent::status() {
    std::lock_guard lock(mutex_);
    return json{{"tasks", tasks_.size()}, {"source", "local"}, {"state_dir", platform::toUtf8(store_.stateDir())}};
}

AgentCore::Pushed WinAgent::secretRotated(const SecretMeta& before, mountfs::Bytes value) {
    Pushed pushed;
    for (auto& [task, t] : tasks_) {
        const auto& entries = t.view->layout().entries;
        bool touched = false, failed = false;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (!sameSecretName(entries[i].ref.source, before.name)) continue;
            if (auto ok = t.view->update(i, value, {-1, t.root}); !ok) {
                log_(taskName(task) + ": secret " + before.name + " not updated: " + ok.error().message);
                failed = true;
            } else {
                touched = true;
            }
        }
        pushed.updated += touched;
        pushed.failed += failed;
    }
    return pushed;
}

}  // namespace secretshim::plugin
