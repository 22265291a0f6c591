// SHA-256 in hex, computed by the tests independently of the code under
// test (task records and fd store entries are named by it).
#pragma once

#include <openssl/sha.h>

#include <string>

namespace secretshim::test {

inline std::string sha256Hex(const std::string& text) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char c : digest) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

}  // namespace secretshim::test
