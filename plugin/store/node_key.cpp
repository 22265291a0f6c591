#include "plugin/store/node_key.hpp"

#include <fcntl.h>

#include <cerrno>

#include <openssl/rand.h>

#include "plugin/store/atomic_file.hpp"
#include "plugin/store/private_path.hpp"

namespace secretshim::plugin {
namespace {

std::string label(const std::string& stateDir) {
    return "node key " + stateDir + "/" + std::string(kNodeKeyFile);
}

Result<SecureBuffer> loadKey(int stateDirFd, const std::string& stateDir) {
    auto file = openPrivateFile(stateDirFd, std::string(kNodeKeyFile), label(stateDir));
    if (!file) return tl::unexpected(file.error());
    if (file->size != kNodeKeySize)
        return tl::unexpected(Error{EINVAL, label(stateDir) + " is " + std::to_string(file->size) +
                                                " bytes, expected " + std::to_string(kNodeKeySize)});
    auto key = SecureBuffer::allocate(kNodeKeySize);
    if (!key) return tl::unexpected(key.error());
    if (auto ok = readExact(file->fd.get(), key->span(), label(stateDir)); !ok) return tl::unexpected(ok.error());
    return key;
}

// Writes a new key; EEXIST when another process created one first.
Result<void> createKey(int stateDirFd, const std::string& stateDir) {
    auto key = SecureBuffer::allocate(kNodeKeySize);
    if (!key) return tl::unexpected(key.error());
    // The private DRBG: key material never shares a generator with public
    // values such as nonces and ids.
    if (RAND_priv_bytes(key->data(), static_cast<int>(key->size())) != 1)
        return fail("creating " + label(stateDir) + ": the OpenSSL random generator failed");
    return writeFileAtomic(stateDirFd, stateDir, std::string(kNodeKeyFile), key->span(), 0600, IfExists::fail);
}

}  // namespace

Result<NodeKey> NodeKey::loadOrCreate(const std::string& stateDir) {
    auto dir = openOrCreateDir(AT_FDCWD, stateDir, "state directory " + stateDir, DirAccess::any);
    if (!dir) return tl::unexpected(dir.error());
    return loadOrCreateAt(dir->get(), stateDir);
}

Result<NodeKey> NodeKey::loadOrCreateAt(int stateDirFd, const std::string& stateDir) {
    auto key = loadKey(stateDirFd, stateDir);
    if (!key && key.error().code == ENOENT) {
        // Never replace an existing key: every stored secret depends on it.
        // Two processes starting at once both write; one rename wins and
        // both then load the winner's key.
        auto created = createKey(stateDirFd, stateDir);
        if (!created && created.error().code != EEXIST) return tl::unexpected(created.error());
        key = loadKey(stateDirFd, stateDir);
    }
    if (!key) return tl::unexpected(key.error());
    return NodeKey(std::move(*key));
}

}  // namespace secretshim::plugin
