#include "plugin/ctl/secret_filter.hpp"

#include <algorithm>

namespace secretshim::plugin {

Result<SecretFilter> SecretFilter::parse(const std::vector<std::string>& texts) {
    SecretFilter filter;
    for (const std::string& text : texts) {
        const auto eq = text.find('=');
        const std::string kind = text.substr(0, eq);
        const std::string rest = eq == std::string::npos ? "" : text.substr(eq + 1);
        if (eq == std::string::npos || rest.empty() || (kind != "label" && kind != "name" && kind != "id"))
            return fail("--filter " + quote(text) + ": expected label=KEY, label=KEY=VALUE, name=NAME or id=ID");
        Term term{Term::Kind::name, rest, "", false};
        if (kind == "id") term.kind = Term::Kind::id;
        if (kind == "label") {
            const auto at = rest.find('=');
            term = {Term::Kind::label, rest.substr(0, at), "", at != std::string::npos};
            if (term.hasValue) term.value = rest.substr(at + 1);
            if (term.key.empty()) return fail("--filter " + quote(text) + ": the label key is empty");
        }
        filter.terms_.push_back(std::move(term));
    }
    return filter;
}

bool SecretFilter::matches(const SecretInfo& secret) const {
    return std::all_of(terms_.begin(), terms_.end(), [&](const Term& t) {
        switch (t.kind) {
        case Term::Kind::name: return secret.name.starts_with(t.key);
        case Term::Kind::id: return secret.id.starts_with(t.key);
        case Term::Kind::label: {
            const auto it = secret.labels.find(t.key);
            return it != secret.labels.end() && (!t.hasValue || it->second == t.value);
        }
        }
        return false;
    });
}

}  // namespace secretshim::plugin
