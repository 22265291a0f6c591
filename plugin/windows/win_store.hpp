// The local secret store on Windows: the record format of the Linux store
// (plugin/store/secret_record.hpp, compiled unchanged), one record per
// secret in <state>\secrets\<name>.secret, under the 256-bit node key in
// <state>\node.key. Directories and files carry the Administrators-and-SYSTEM
// DACL. Secret names are case-blind here (NTFS): "DB" and "db" are one name.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secrets_view.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "plugin/store/secret_record.hpp"
#include "plugin/store/secure_buffer.hpp"
#include "plugin/windows/state_files.hpp"

namespace secretshim::plugin {

class WinLocalStore {
public:
    // `stateDir` is a "\\?\" path (absoluteDirectory()); it and its secrets
    // directory are created if missing, and the node key too. An existing
    // `stateDir` is checked as `existing` says (its contents then need no check).
    static Result<WinLocalStore> open(const std::wstring& stateDir, std::size_t maxPayload,
                                      ExistingDirectory existing = ExistingDirectory::mustBePrivate);

    // Refuses an invalid name, an empty or oversized value, labels
    // checkLabels() refuses, an existing name.
    Result<SecretMeta> create(std::string_view name, mountfs::Bytes plaintext, const SecretLabels& labels = {});
    // A new value as the Linux store's rotate() makes it (local_store.hpp):
    // the same id and labels, version one more, the old record
    // authenticated first, the new one renamed over it.
    Result<SecretMeta> rotate(std::string_view name, mountfs::Bytes plaintext);
    // Every secret's metadata, sorted by name; decrypts nothing.
    Result<std::vector<SecretMeta>> list() const;
    Result<void> remove(std::string_view name);
    Result<SecureBuffer> load(std::string_view name) const;

    const std::wstring& stateDir() const { return stateDir_; }
    const platform::SecurityDescriptor& descriptor() const { return descriptor_; }

private:
    WinLocalStore(std::wstring stateDir, SecureBuffer key, platform::SecurityDescriptor descriptor,
                  std::size_t maxPayload)
        : stateDir_(std::move(stateDir)), key_(std::move(key)), descriptor_(std::move(descriptor)),
          maxPayload_(maxPayload) {}
    std::wstring recordPath(std::string_view name) const;

    std::wstring stateDir_;
    SecureBuffer key_;
    platform::SecurityDescriptor descriptor_;
    std::size_t maxPayload_;
};

}  // namespace secretshim::plugin
