#include "plugin/agent/task_key.hpp"

#include <openssl/evp.h>

#include <cstdlib>

#include "mountfs/base/hex.hpp"

namespace secretshim::plugin {

// The hex SHA-256 of the id, then (when the bundle is known) a NUL byte and
// the bundle. Ids and bundles are the runtime's, of any length and content:
// neither may shape a path or a name, so only their digest does. Without a
// bundle the name is the id's digest alone, the name a task's record had
// before bundles were sent: such a record still loads and is removed under
// its own name. The agent refuses a NUL byte in an id or a bundle, so no key
// with a bundle digests to the same text as another key's id.
std::string TaskKey::storeName() const {
    std::string text = id;
    if (!bundle.empty()) text.append(1, '\0').append(bundle);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    // Fails only without memory or without OpenSSL's default provider: a
    // name that is not unique could make one task's record replace
    // another's, so stop (running containers keep their views; the next
    // agent re-adopts them).
    if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) != 1) std::abort();
    return hexEncode({digest, size});
}

}  // namespace secretshim::plugin
