// An admin signing key pair for tests, as `openssl genpkey -algorithm
// ed25519` and `openssl pkey -pubout` write them: PEM, the private half 0600.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

namespace secretshim::test {

// Writes a fresh pair to `privPath` (and `pubPath` unless empty); false on
// any failure.
inline bool writeEd25519Key(const std::string& privPath, const std::string& pubPath = {}) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (!key) return false;
    bool ok = false;
    if (std::FILE* f = std::fopen(privPath.c_str(), "w")) {
        ok = ::fchmod(fileno(f), 0600) == 0 && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
        ok = std::fclose(f) == 0 && ok;
    }
    if (ok && !pubPath.empty()) {
        std::FILE* f = std::fopen(pubPath.c_str(), "w");
        ok = f && PEM_write_PUBKEY(f, key) == 1;
        if (f) ok = std::fclose(f) == 0 && ok;
    }
    EVP_PKEY_free(key);
    return ok;
}

}  // namespace secretshim::test
