// `secretshimctl secret ls --filter ...` on the local store, as Docker's
// `secret ls --filter`: label=KEY (has the label), label=KEY=VALUE (has it
// with that value), name=NAME and id=ID (the whole or the start of it).
// Every filter given must match (AND). Applied by the CLI to the agent's
// listing.
#pragma once

#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

class SecretFilter {
public:
    // One line naming the filter it cannot read.
    static Result<SecretFilter> parse(const std::vector<std::string>& texts);
    bool matches(const SecretInfo& secret) const;

private:
    struct Term {
        enum class Kind { label, name, id } kind;
        std::string key;
        std::string value;
        bool hasValue = false;  // label=KEY=VALUE
    };
    std::vector<Term> terms_;
};

}  // namespace secretshim::plugin
