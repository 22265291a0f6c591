// SHA-256 as lowercase hex: the Windows agent names a task's record file
// after it, whatever the id's length or case (NTFS names are case-blind).
// Windows only (CNG, sha256_bcrypt.cpp); on Linux the task key hashes with
// OpenSSL in place (plugin/agent/task_key.cpp).
#pragma once

#include <string>
#include <string_view>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

Result<std::string> sha256Hex(std::string_view data);

}  // namespace secretshim::plugin
