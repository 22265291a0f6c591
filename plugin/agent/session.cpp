#include "plugin/agent/session.hpp"

#include <cerrno>
#include <cstdio>

#include "plugin/protocol/messages.hpp"
#include "plugin/agent/log.hpp"
#include "plugin/protocol/json_fields.hpp"

namespace secretshim::plugin {

using nlohmann::json;
using platform::UniqueFd;

namespace {

Session::Outcome answer(json body, bool close) { return {std::move(body), {}, close}; }
Session::Outcome refuse(const std::string& message) { return answer(errorReply(message), true); }

}  // namespace

Session::Session(Agent& agent, std::optional<std::string> refusal) : agent_(agent), refusal_(std::move(refusal)) {}

Session::Outcome Session::receive(Result<JsonMessage> message) {
    // A refused peer still gets its answer, to its first request: a reply
    // before it has sent would end in EPIPE on its side.
    if (refusal_) return refuse(*refusal_);
    if (!message && message.error().code == EBADMSG) return refuse("malformed request");
    if (!message) return {std::nullopt, {}, true};  // closed, truncated or oversized: drop the client
    const json& request = message->body;
    const std::string op = opOf(request);
    if (op == op::create) return onCreate(request, message->fds);
    if (op == op::attached) return onAttached(request);
    return answer(agent_.handle(request, message->fds), false);
}

Session::Outcome Session::onCreate(const json& request, std::vector<UniqueFd>& fds) {
    if (pending_) return refuse("one create per connection");
    auto parsed = CreateRequest::fromJson(request);
    Agent::Refused why;
    auto task = parsed ? agent_.prepareTask(*parsed, fds, why) : propagate(parsed);
    if (!task) {
        if (!parsed) agent_.refused(Refusal::badRequest);  // prepareTask() counts its own
        const std::string id = parsed ? parsed->id : std::string();
        log("container " + quote(id) + ": refused: " + task.error().message,
            {.level = why.kind == Refusal::other ? LogLevel::err : LogLevel::warning, .event = audit::refuse,
             .containers = {id}, .secrets = why.secrets, .identity = why.identity ? &*why.identity : nullptr,
             .task = why.task, .reason = refusalLabel(why.kind)});
        return refuse(task.error().message);
    }
    Outcome out;
    CreateReply reply{task->view->layout().entries.size(), {}};
    for (const auto& source : task->view->mountSources()) {
        reply.mounts.push_back({source.target, source.directory});
        out.fds.push_back(source.fd);
    }
    out.reply = reply.toJson();
    // If the reply cannot be sent, the connection abandons the session and
    // the pending view is flushed with it.
    pending_ = std::make_unique<Agent::PendingTask>(std::move(*task));
    return out;
}

Session::Outcome Session::onAttached(const json& request) {
    if (!pending_) return refuse("nothing to attach");
    auto report = AttachedRequest::fromJson(request);
    if (!report) {
        agent_.refused(Refusal::badRequest);
        pending_.reset();  // flushes the view
        return refuse(report.error().message);
    }
    if (!report->ok) {
        agent_.refused(Refusal::target);
        log("container " + quote(pending_->record.id) + ": the hook could not attach: " + quote(report->error),
            {.level = LogLevel::err, .containers = {pending_->record.id}, .secrets = joinNames(pending_->secrets),
             .identity = identityOf(pending_->record), .task = pending_->record.task});
        pending_.reset();  // flushes the view
        return answer(okReply(), true);
    }
    pending_->record.locked = report->locked;
    agent_.startTask(std::move(*pending_));
    pending_.reset();
    return answer(okReply(), true);
}

}  // namespace secretshim::plugin
