// The embedded local store as a source of secrets: each secret carries the
// grant rules an admin gave it (secretshimctl secret grant), and a
// container receives a secret only where one of them allows its identity
// and the reference it asks for. A secret without a grant reaches nobody.
// The rules of every secret are held in memory (loaded at start, changed
// only through this object), so checking them costs no file access on a
// container's start.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plugin/agent/core/secret_catalog.hpp"
#include "plugin/agent/secret_source.hpp"
#include "plugin/identity/grant_rule.hpp"
#include "plugin/store/local_store.hpp"

namespace secretshim::plugin {

class LocalSource final : public SecretSource, public SecretCatalog {
public:
    // Opens the store and reads every secret's grants; a grants file that
    // cannot be read or holds a bad rule is reported in `problems` and that
    // secret reaches nobody until it is granted again.
    static Result<std::unique_ptr<LocalSource>> open(const std::string& stateDir, StoreOptions options,
                                                     std::vector<std::string>& problems);

    Result<GrantedSecrets> grant(const WorkloadIdentity& identity, const std::string& secrets,
                                 const std::string& task) override;
    // Whether `ref` (in the container's own ids) is granted to `identity`.
    bool allows(const WorkloadIdentity& identity, const mountfs::SecretRef& ref) const;

    // The admin verbs (core/secret_catalog.hpp).
    bool supportsGrants() const override { return true; }
    Result<SecretMeta> create(std::string_view name, mountfs::Bytes value, const std::vector<GrantRule>& rules,
                              const SecretLabels& labels = {}) override;
    // The same id: the secret's grants stay as they are.
    Result<SecretMeta> rotate(std::string_view name, mountfs::Bytes value) override {
        return store_.rotate(name, value);
    }
    Result<std::vector<SecretMeta>> list() const override { return store_.list(); }
    Result<SecretMeta> inspect(std::string_view name) const override { return store_.inspect(name); }
    // A secret's value, decrypted (a running task catching up on a rotation).
    Result<SecureBuffer> value(std::string_view name) const { return store_.load(name); }
    std::vector<std::string> ruleTexts(const std::string& name) const override;
    const std::vector<GrantRule>* rules(const std::string& name) const;
    Result<void> addGrant(const std::string& name, const GrantRule& rule) override;
    Result<void> revokeGrant(const std::string& name, const GrantRule& rule) override;
    Result<void> remove(const std::string& name) override;

private:
    explicit LocalSource(LocalStore store) : store_(std::move(store)) {}
    struct Grants {
        std::string secretId;
        std::vector<GrantRule> rules;
    };
    Result<void> save(const std::string& name, const Grants& grants);

    LocalStore store_;
    std::map<std::string, Grants, std::less<>> grants_;  // every secret of the store, by name
};

}  // namespace secretshim::plugin
