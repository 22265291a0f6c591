// The node key: 256 random bits in <state>/node.key, created at the
// agent's first start, that encrypt every secret in the local store.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "mountfs/base/error.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

// Key files: `size` random bytes in `file` in the directory `dirFd`
// (`label` names the key in errors), owned by the effective uid, mode 0600.
// A file of another size is refused.
Result<SecureBuffer> readKeyFile(int dirFd, const std::string& file, const std::string& label, std::size_t size);
// The same, creating the key from OpenSSL's private generator if the file
// is missing; an existing key is never replaced (`dir` names the directory
// in errors).
Result<SecureBuffer> loadOrCreateKeyFile(int dirFd, const std::string& dir, const std::string& file,
                                         const std::string& label, std::size_t size);

inline constexpr std::size_t kNodeKeySize = 32;
inline constexpr std::string_view kNodeKeyFile = "node.key";

class NodeKey {
public:
    // Loads <stateDir>/node.key, creating the directory (0700) and the key
    // (0600, root:root when running as root) if missing.
    static Result<NodeKey> loadOrCreate(const std::string& stateDir);
    // The same with the state directory already open; `stateDir` names it
    // in errors.
    static Result<NodeKey> loadOrCreateAt(int stateDirFd, const std::string& stateDir);

    std::span<const unsigned char> bytes() const { return key_.span(); }
    bool locked() const { return key_.locked(); }

private:
    explicit NodeKey(SecureBuffer key) : key_(std::move(key)) {}

    SecureBuffer key_;
};

}  // namespace secretshim::plugin
