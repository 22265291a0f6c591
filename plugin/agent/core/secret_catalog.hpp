// The admin side of a node's local store, as the agent core serves it
// (secretshimctl secret create/rotate/ls/inspect/rm/grant/revoke): the Linux
// store with its grant rules (LocalSource), the Windows store without.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secrets_view.hpp"
#include "plugin/identity/grant_rule.hpp"
#include "plugin/store/secret_record.hpp"

namespace secretshim::plugin {

class SecretCatalog {
public:
    virtual ~SecretCatalog() = default;

    // Whether secrets carry grant rules here. Where they do not (Windows,
    // whose containers have no identity to check), a rule is refused and
    // addGrant()/revokeGrant() are never called.
    virtual bool supportsGrants() const = 0;
    // Whether two names are one secret (NTFS folds case; Linux does not).
    virtual bool sameName(std::string_view a, std::string_view b) const { return a == b; }

    // A new secret, with its first grants (maybe none) and labels. Refuses
    // an invalid name, an empty or oversized value, bad labels and an
    // existing name.
    virtual Result<SecretMeta> create(std::string_view name, mountfs::Bytes value,
                                      const std::vector<GrantRule>& rules, const SecretLabels& labels) = 0;
    // A new value for an existing secret, atomically on disk; its id,
    // grants and labels stay, its version is one more.
    virtual Result<SecretMeta> rotate(std::string_view name, mountfs::Bytes value) = 0;
    // Every secret's metadata, sorted by name; decrypts nothing.
    virtual Result<std::vector<SecretMeta>> list() const = 0;
    // One secret's metadata (its name as stored), or "does not exist".
    virtual Result<SecretMeta> inspect(std::string_view name) const {
        auto all = list();
        if (!all) return propagate(all);
        for (auto& m : *all)
            if (sameName(m.name, name)) return std::move(m);
        return fail("secret " + quote(name) + " does not exist");
    }
    virtual Result<void> remove(const std::string& name) = 0;

    // Where grants are supported: a secret's rules as an admin wrote them;
    // addGrant() refuses a rule the secret already has, revokeGrant() one
    // it lacks.
    virtual std::vector<std::string> ruleTexts(const std::string&) const { return {}; }
    virtual Result<void> addGrant(const std::string&, const GrantRule&) { return fail("grants are not supported"); }
    virtual Result<void> revokeGrant(const std::string&, const GrantRule&) { return fail("grants are not supported"); }
};

}  // namespace secretshim::plugin
