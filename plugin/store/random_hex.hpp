// Random identifiers: secret ids and temporary file names. Linux:
// random_hex.cpp (OpenSSL); Windows: random_hex_win.cpp (CNG).
#pragma once

#include <cstddef>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

// `bytes` random bytes (OpenSSL's public DRBG; on Windows CNG's system
// generator), as lowercase hex.
Result<std::string> randomHex(std::size_t bytes);

}  // namespace secretshim::plugin
