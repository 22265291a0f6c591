// SHA-256 through CNG, as lowercase hex: names a task's record file after
// its id, whatever the id's length or case (NTFS names are case-blind).
#pragma once

#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

Result<std::string> sha256Hex(std::string_view data);

}  // namespace secretshim::plugin
