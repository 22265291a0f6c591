#include "plugin/agent/journal_log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>

#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
// Without this, sd_journal_sendv() adds CODE_FILE/LINE/FUNC: always this
// file's, which would only mislead.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#endif

#include "plugin/identity/grant_rule.hpp"

namespace secretshim::plugin {

namespace {

// The narrowest grant rule that names the identity: what an admin would
// write in `secret grant` to let exactly this requester in.
std::string identityRule(const WorkloadIdentity& identity) {
    GrantRule rule;
    rule.kind = identity.kind;
    rule.ns = identity.ns;
    rule.pod = identity.pod;
    rule.container = identity.container;
    rule.name = identity.name;
    return rule.text();
}

}  // namespace

bool isJournalStream(int fd, const char* journalStream) {
    if (!journalStream) return false;
    unsigned long long device = 0, inode = 0;
    char end = 0;
    if (std::sscanf(journalStream, "%llu:%llu%c", &device, &inode, &end) != 2) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == device && static_cast<unsigned long long>(st.st_ino) == inode;
}

std::vector<std::string> journalFields(std::string_view identifier, std::string_view line, const LogFields& fields) {
    std::vector<std::string> out;
    out.push_back("MESSAGE=" + std::string(line));
    out.push_back("PRIORITY=" + std::to_string(static_cast<int>(fields.level)));
    out.push_back("SYSLOG_IDENTIFIER=" + std::string(identifier));
    if (!fields.event.empty()) out.push_back("SECRETSHIM_EVENT=" + std::string(fields.event));
    for (const auto& id : fields.containers)
        if (!id.empty()) out.push_back("CONTAINER_ID=" + id);
    if (!fields.secrets.empty()) out.push_back("SECRETSHIM_SECRETS=" + fields.secrets);
    if (fields.identity) {
        const WorkloadIdentity& who = *fields.identity;
        out.push_back("SECRETSHIM_IDENTITY=" + identityRule(who));
        out.push_back("SECRETSHIM_INTEGRATION=" + std::string(integrationName(who.integration)));
        if (who.kind == WorkloadIdentity::Kind::kubernetes) {
            out.push_back("SECRETSHIM_POD_NAMESPACE=" + who.ns);
            out.push_back("SECRETSHIM_POD_UID=" + who.podUid);
        }
    }
    if (!fields.task.empty()) out.push_back("SECRETSHIM_TASK=" + fields.task);
    if (!fields.reason.empty()) out.push_back("SECRETSHIM_REASON=" + fields.reason);
    if (!fields.rule.empty()) out.push_back("SECRETSHIM_RULE=" + fields.rule);
    return out;
}

#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
bool journalSupported() { return true; }

bool sendToJournal(const std::vector<std::string>& fields) {
    // sd_journal_sendv() reports success when there is no journal socket
    // at all (it fails silently then): look first, so that the line is not lost.
    if (::access("/run/systemd/journal/socket", F_OK) != 0) return false;
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields) iov.push_back({const_cast<char*>(f.data()), f.size()});
    return ::sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) == 0;
}
#else
bool journalSupported() { return false; }
bool sendToJournal(const std::vector<std::string>&) { return false; }
#endif

}  // namespace secretshim::plugin
