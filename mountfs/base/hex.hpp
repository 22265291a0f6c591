// Lowercase hex: ids, temporary names, digests, and a secret's value in
// transit on Windows (hence the variant that writes into a given buffer).
#pragma once

#include <span>
#include <string>

namespace secretshim {

std::string hexEncode(std::span<const unsigned char> bytes);
// Writes 2 * bytes.size() characters to `out` (no allocation of its own
// that would hold a copy).
void hexEncodeTo(std::span<const unsigned char> bytes, char* out);

}  // namespace secretshim
