// Random identifiers: secret ids and temporary file names.
#pragma once

#include <cstddef>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

// `bytes` random bytes from OpenSSL's public DRBG, as lowercase hex.
Result<std::string> randomHex(std::size_t bytes);

}  // namespace secretshim::plugin
