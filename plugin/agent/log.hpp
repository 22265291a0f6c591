// The agent's log: one entry per event, with its priority and fields
// (core/log_fields.hpp). Under journald (log_target: journal, or auto with
// stderr connected to the journal) a native journal entry whose MESSAGE is
// the line; elsewhere the line on stderr, "secretshimd: <line>" (journal_log.hpp
// says how the two are told apart). Lines below the log level are dropped.
// Never a secret's value.
#pragma once

#include <string_view>

#include "mountfs/base/error.hpp"
#include "mountfs/base/log.hpp"
#include "plugin/agent/core/log_fields.hpp"
#include "plugin/config/agent_config.hpp"

namespace secretshim::plugin {

void log(std::string_view line, const LogFields& fields = {});

// log_level; callable at any time, from any thread (a reload sets it).
void setLogLevel(LogLevel level);
LogLevel logLevel();
// log_target; "journal" is refused by an agent built without libsystemd.
// Until it is called the target is "auto".
Result<void> setLogTarget(LogTarget target);

}  // namespace secretshim::plugin
