#include "plugin/agent/service_notify.hpp"

#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <cstdlib>

namespace secretshim::plugin {

// unset_environment = 0: the agent forks helpers, none of which notify, and
// NOTIFY_SOCKET must stay set for STOPPING=1 later.
void notifyReady([[maybe_unused]] const std::string& status) {
#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
    (void)::sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
#endif
}

void notifyStopping() {
#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
    (void)::sd_notify(0, "STOPPING=1");
#endif
}

#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
namespace {

// systemd answers nothing: a message it cannot take (a full store, no
// FileDescriptorStoreMax=) is logged by systemd and the fd closed there.
// The agent keeps serving; its successor finds that view through its
// mounts instead (adoptTasks).
class SystemdFdStore final : public FdStore {
public:
    // FDPOLL=0: a mount fd reports nothing; a view leaves the store only
    // when the agent says so, after wiping it.
    void keep(const std::string& name, int fd) override {
        (void)::sd_pid_notify_with_fds(0, 0, ("FDSTORE=1\nFDPOLL=0\nFDNAME=" + name).c_str(), &fd, 1);
    }
    void drop(const std::string& name) override {
        (void)::sd_pid_notify(0, 0, ("FDSTOREREMOVE=1\nFDNAME=" + name).c_str());
    }
};

}  // namespace
#endif

std::unique_ptr<FdStore> serviceFdStore() {
#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
    // Whether the unit has a store cannot be asked: later systemd versions
    // set $FDSTORE when it does, 252 (Debian 12) never says. The packaged
    // unit sets FileDescriptorStoreMax=; under a unit without it systemd
    // logs and closes what the agent sends, and nothing else changes.
    if (!std::getenv("NOTIFY_SOCKET")) return nullptr;
    return std::make_unique<SystemdFdStore>();
#else
    return nullptr;
#endif
}

std::vector<StoredFd> takeStoredFds() {
    std::vector<StoredFd> stored;
#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
    char** names = nullptr;
    // unset_environment = 1: LISTEN_FDS and LISTEN_FDNAMES describe fds
    // the agent owns from here on; nothing it forks is to see them.
    const int n = ::sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; ++i)
        stored.push_back({names && names[i] ? names[i] : "", platform::UniqueFd(SD_LISTEN_FDS_START + i)});
    if (names)
        for (int i = 0; names[i]; ++i) std::free(names[i]);
    std::free(names);
#endif
    return stored;
}

}  // namespace secretshim::plugin
