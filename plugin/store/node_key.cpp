#include "plugin/store/node_key.hpp"

#include <fcntl.h>

#include <cerrno>

#include <openssl/rand.h>

#include "plugin/store/atomic_file.hpp"
#include "plugin/store/private_path.hpp"

namespace secretshim::plugin {

Result<SecureBuffer> readKeyFile(int dirFd, const std::string& file, const std::string& label, std::size_t size) {
    auto opened = openPrivateFile(dirFd, file, label);
    if (!opened) return propagate(opened);
    if (opened->size != size)
        return failWith(EINVAL, label + " is " + std::to_string(opened->size) + " bytes, expected " + std::to_string(size));
    auto key = SecureBuffer::allocate(size);
    if (!key) return propagate(key);
    if (auto ok = readExact(opened->fd.get(), key->span(), label); !ok) return propagate(ok);
    return key;
}

Result<SecureBuffer> loadOrCreateKeyFile(int dirFd, const std::string& dir, const std::string& file,
                                         const std::string& label, std::size_t size) {
    auto key = readKeyFile(dirFd, file, label, size);
    if (key || key.error().code != ENOENT) return key;
    auto fresh = SecureBuffer::allocate(size);
    if (!fresh) return propagate(fresh);
    // The private DRBG: key material never shares a generator with public
    // values such as nonces and ids.
    if (RAND_priv_bytes(fresh->data(), static_cast<int>(size)) != 1)
        return fail("creating " + label + ": the OpenSSL random generator failed");
    // Two processes starting at once both write; one rename wins (the other
    // gets EEXIST) and both then load the winner's key.
    auto written = writeFileAtomic(dirFd, dir, file, fresh->span(), 0600, IfExists::fail);
    if (!written && written.error().code != EEXIST) return propagate(written);
    return readKeyFile(dirFd, file, label, size);
}

Result<NodeKey> NodeKey::loadOrCreate(const std::string& stateDir) {
    auto dir = openOrCreateDir(AT_FDCWD, stateDir, "state directory " + stateDir, DirAccess::any);
    if (!dir) return propagate(dir);
    return loadOrCreateAt(dir->get(), stateDir);
}

Result<NodeKey> NodeKey::loadOrCreateAt(int stateDirFd, const std::string& stateDir) {
    // Never replaced: every stored secret depends on it.
    auto key = loadOrCreateKeyFile(stateDirFd, stateDir, std::string(kNodeKeyFile),
                                   "node key " + stateDir + "/" + std::string(kNodeKeyFile), kNodeKeySize);
    if (!key) return propagate(key);
    return NodeKey(std::move(*key));
}

}  // namespace secretshim::plugin
