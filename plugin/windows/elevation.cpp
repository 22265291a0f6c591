#include "plugin/windows/elevation.hpp"

#include <windows.h>

namespace secretshim::plugin {

bool runsElevated() {
    BYTE admins[SECURITY_MAX_SID_SIZE];
    DWORD size = sizeof admins;
    BOOL member = FALSE;
    return ::CreateWellKnownSid(WinBuiltinAdministratorsSid, nullptr, admins, &size) &&
           ::CheckTokenMembership(nullptr, admins, &member) && member;
}

}  // namespace secretshim::plugin
