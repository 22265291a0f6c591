// What an agent's log line says beside its text, on both platforms: its
// priority and, for the audit trail, which event it records and of whom.
// Under journald each field is a journal field (plugin/agent/journal_log.hpp);
// on stderr and on Windows only the line is written. Names and identities,
// never a secret's value. docs/admin-guide.md ("Logs and audit") lists the
// fields and the events for admins.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "mountfs/base/log.hpp"
#include "plugin/identity/workload_identity.hpp"

namespace secretshim::plugin {

// SECRETSHIM_EVENT: the audit trail's events, a fixed set (admins query
// them by name). A failed step has priority err and no event.
namespace audit {
inline constexpr std::string_view create = "create";    // a secret created in the local store
inline constexpr std::string_view grant = "grant";      // a grant rule added to a secret
inline constexpr std::string_view ungrant = "ungrant";  // a grant rule taken from a secret
inline constexpr std::string_view remove = "remove";    // a secret removed from the local store
inline constexpr std::string_view rotate = "rotate";    // a local secret's value replaced (secret rotate)
inline constexpr std::string_view attach = "attach";    // a starting container got its secrets
inline constexpr std::string_view add = "add";          // a running container got one more (cluster)
inline constexpr std::string_view update = "update";    // a running container's secret rewritten (rotation)
inline constexpr std::string_view revoke = "revoke";    // a running container's secret zeroed and removed
inline constexpr std::string_view flush = "flush";      // a stopped container's secrets wiped
inline constexpr std::string_view adopt = "adopt";      // a running container's secrets taken back at a restart
inline constexpr std::string_view refuse = "refuse";    // a request refused (SECRETSHIM_REASON says why)
}  // namespace audit

struct LogFields {
    // Each field has an initializer: g++ 12 warns of a designated
    // initializer that leaves out one without (-Wmissing-field-initializers).
    LogLevel level = LogLevel::info;                  // PRIORITY
    std::string_view event = {};                      // SECRETSHIM_EVENT, one of audit::; empty: none
    std::vector<std::string> containers = {};         // CONTAINER_ID, one field each
    std::string secrets = {};                         // SECRETSHIM_SECRETS: names, comma-separated
    const WorkloadIdentity* identity = nullptr;       // SECRETSHIM_IDENTITY and the fields beside it
    std::string task = {};                            // SECRETSHIM_TASK: the cluster task
    std::string reason = {};                          // SECRETSHIM_REASON: a refusal's, one short word
    std::string rule = {};                            // SECRETSHIM_RULE: a grant's rule
};

// The agent core's log: a line and its fields. A platform that writes
// plain lines only (Windows) passes a function of the line alone.
class LogFn {
public:
    LogFn() = default;
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, LogFn> &&
                 std::is_invocable_v<F&, const std::string&, const LogFields&>)
    LogFn(F write) : write_(std::move(write)) {}
    template <class F>
        requires(!std::is_invocable_v<F&, const std::string&, const LogFields&> &&
                 std::is_invocable_v<F&, const std::string&>)
    LogFn(F plain)
        : write_([plain = std::move(plain)](const std::string& line, const LogFields&) mutable { plain(line); }) {}
    void operator()(const std::string& line, const LogFields& fields = {}) const {
        if (write_) write_(line, fields);
    }

private:
    std::function<void(const std::string& line, const LogFields& fields)> write_;
};

}  // namespace secretshim::plugin
