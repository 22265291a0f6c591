#include "plugin/agent/service_notify.hpp"

#ifdef SECRETSHIM_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

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

}  // namespace secretshim::plugin
