// The security descriptor of the internal secrets directory: a protected
// DACL (nothing inherited from the image's directories above) that grants
// full access to BUILTIN\Administrators and to SYSTEM and to no one else,
// inherited by the files inside. In SDDL: D:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY),
// what Docker applies to its own secrets directory on Windows.
#pragma once

#include <windows.h>

#include <memory>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

inline constexpr const char* kAdminsAndSystemSddl = "D:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)";

class SecurityDescriptor {
public:
    // Built in code from well-known SIDs (no SDDL parsing), so that what is
    // applied is exactly what the tests inspect.
    static Result<SecurityDescriptor> adminsAndSystemOnly();

    // Absolute-format descriptor; valid as long as this object lives.
    PSECURITY_DESCRIPTOR get() const;
    PACL dacl() const;
    // The DACL in SDDL, as Windows renders it.
    Result<std::string> sddl() const;

private:
    struct Storage;
    explicit SecurityDescriptor(std::shared_ptr<const Storage> storage) : storage_(std::move(storage)) {}
    // Shared and immutable: the descriptor points into it, so it never moves.
    std::shared_ptr<const Storage> storage_;
};

// Whether an existing object's descriptor keeps everyone but
// Administrators and SYSTEM out: owned by one of them (an owner can always
// rewrite the DACL), a DACL present (a NULL DACL lets everyone in) whose
// every allow ACE names one of them; deny ACEs are fine. The error says
// what is wrong, naming SIDs in their string form.
Result<void> checkAdminsAndSystemOnly(PSECURITY_DESCRIPTOR descriptor);

// The DACL part of any security descriptor in SDDL (used by the tests and
// the fake file system to record what was applied).
Result<std::string> daclToSddl(PSECURITY_DESCRIPTOR descriptor);

}  // namespace secretshim::platform
