#include "plugin/agent/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "plugin/agent/journal_log.hpp"

namespace secretshim::plugin {

namespace {

constexpr std::string_view kIdentifier = "secretshimd";

std::atomic<LogLevel> level_{LogLevel::info};
// -1: "auto", not looked at yet; 0: stderr; 1: the journal.
std::atomic<int> journal_{-1};

bool toJournal() {
    int journal = journal_.load();
    if (journal < 0) {
        journal = journalSupported() && isJournalStream(STDERR_FILENO, std::getenv("JOURNAL_STREAM")) ? 1 : 0;
        journal_.store(journal);
    }
    return journal == 1;
}

}  // namespace

void log(std::string_view line, const LogFields& fields) {
    if (static_cast<int>(fields.level) > static_cast<int>(level_.load())) return;
    // A journal that is gone (journald restarting) still gets the line, on stderr.
    if (toJournal() && sendToJournal(journalFields(kIdentifier, line, fields))) return;
    logLine(kIdentifier, line);
}

void setLogLevel(LogLevel level) { level_.store(level); }

LogLevel logLevel() { return level_.load(); }

Result<void> setLogTarget(LogTarget target) {
    if (target == LogTarget::journal && !journalSupported())
        return fail("log_target: journal: this secretshimd was built without libsystemd");
    journal_.store(target == LogTarget::automatic ? -1 : target == LogTarget::journal ? 1 : 0);
    return {};
}

}  // namespace secretshim::plugin
