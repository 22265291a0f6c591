// Native journal entries (sd_journal_sendv): PRIORITY, MESSAGE,
// SYSLOG_IDENTIFIER and the agent's fields, so that journalctl can filter
// by priority and by field (docs/admin-guide.md, "Logs and audit"). A line
// written to stderr under systemd reaches the journal too, but only as text
// at the unit's default priority, its tag doubled.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plugin/agent/core/log_fields.hpp"

namespace secretshim::plugin {

// Whether `fd` is the stream systemd connected to the journal: the
// JOURNAL_STREAM variable ("DEVICE:INODE", systemd.exec(5)) names it, and
// a child that inherited the variable with another stderr must not take it
// for its own (sd_journal_stream_fd(3) says to compare).
bool isJournalStream(int fd, const char* journalStream);

// The entry's fields, "NAME=value" each, in the order written.
std::vector<std::string> journalFields(std::string_view identifier, std::string_view line, const LogFields& fields);

// Writes one entry; false if it could not (no journal socket, a send that
// failed, or an agent built without libsystemd): the caller writes the line
// to stderr instead.
bool sendToJournal(const std::vector<std::string>& fields);
// Whether this agent can write to the journal at all (built with libsystemd).
bool journalSupported();

}  // namespace secretshim::plugin
