// Whether this process may do what the agent does: write into containers'
// filesystems, serve the admin-only pipe, manage services.
#pragma once

namespace secretshim::plugin {

// True for SYSTEM and for an elevated administrator. SYSTEM's token holds
// the Administrators group too; a UAC-filtered (not elevated)
// administrator's token holds it deny-only, which fails.
bool runsElevated();

}  // namespace secretshim::plugin
