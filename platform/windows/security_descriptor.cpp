#include "platform/windows/security_descriptor.hpp"

#include <sddl.h>

#include "platform/windows/utf16.hpp"
#include "platform/windows/win_error.hpp"

namespace secretshim::platform {

struct SecurityDescriptor::Storage {
    alignas(DWORD) BYTE admins[SECURITY_MAX_SID_SIZE] = {};
    alignas(DWORD) BYTE system[SECURITY_MAX_SID_SIZE] = {};
    // Two ACCESS_ALLOWED_ACEs: the header, each ACE less its SidStart
    // placeholder, and each SID (sized after the SIDs are known).
    alignas(DWORD) BYTE acl[sizeof(ACL) + 2 * (sizeof(ACCESS_ALLOWED_ACE) + SECURITY_MAX_SID_SIZE)] = {};
    SECURITY_DESCRIPTOR descriptor = {};
};

Result<SecurityDescriptor> SecurityDescriptor::adminsAndSystemOnly() {
    auto storage = std::make_shared<Storage>();
    DWORD size = sizeof storage->admins;
    if (!::CreateWellKnownSid(WinBuiltinAdministratorsSid, nullptr, storage->admins, &size))
        return failLastError("building the SID of BUILTIN\\Administrators");
    size = sizeof storage->system;
    if (!::CreateWellKnownSid(WinLocalSystemSid, nullptr, storage->system, &size))
        return failLastError("building the SID of SYSTEM");

    auto* acl = reinterpret_cast<PACL>(storage->acl);
    const DWORD aclSize = sizeof(ACL) + 2 * (sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD)) +
                          ::GetLengthSid(storage->admins) + ::GetLengthSid(storage->system);
    if (!::InitializeAcl(acl, aclSize, ACL_REVISION))
        return failLastError("initializing the secrets directory's ACL");
    // OICI: the files inside and any subdirectory inherit the same two ACEs.
    constexpr DWORD inherit = OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE;
    for (PSID sid : {PSID(storage->admins), PSID(storage->system)})
        if (!::AddAccessAllowedAceEx(acl, ACL_REVISION, inherit, FILE_ALL_ACCESS, sid))
            return failLastError("adding an ACE to the secrets directory's ACL");

    auto* sd = &storage->descriptor;
    if (!::InitializeSecurityDescriptor(sd, SECURITY_DESCRIPTOR_REVISION))
        return failLastError("initializing a security descriptor");
    if (!::SetSecurityDescriptorDacl(sd, TRUE, acl, FALSE))
        return failLastError("setting the security descriptor's DACL");
    // Protected: ACEs of the image's directories above are not inherited
    // (an image could grant Everyone read on C:\ProgramData).
    if (!::SetSecurityDescriptorControl(sd, SE_DACL_PROTECTED, SE_DACL_PROTECTED))
        return failLastError("protecting the security descriptor's DACL");
    if (!::IsValidSecurityDescriptor(sd)) return fail("the secrets directory's security descriptor is not valid");
    return SecurityDescriptor(std::move(storage));
}

PSECURITY_DESCRIPTOR SecurityDescriptor::get() const {
    return const_cast<SECURITY_DESCRIPTOR*>(&storage_->descriptor);
}

PACL SecurityDescriptor::dacl() const {
    return reinterpret_cast<PACL>(const_cast<BYTE*>(storage_->acl));
}

Result<std::string> SecurityDescriptor::sddl() const { return daclToSddl(get()); }

namespace {

bool isAdminsOrSystem(PSID sid) {
    for (WELL_KNOWN_SID_TYPE type : {WinBuiltinAdministratorsSid, WinLocalSystemSid}) {
        alignas(DWORD) BYTE known[SECURITY_MAX_SID_SIZE] = {};
        DWORD size = sizeof known;
        if (::CreateWellKnownSid(type, nullptr, known, &size) && ::EqualSid(sid, known)) return true;
    }
    return false;
}

std::string sidText(PSID sid) {
    LPWSTR text = nullptr;
    if (!::ConvertSidToStringSidW(sid, &text)) return "an unreadable SID";
    std::string out = toUtf8(text);
    ::LocalFree(text);
    return out;
}

}  // namespace

Result<void> checkAdminsAndSystemOnly(PSECURITY_DESCRIPTOR descriptor) {
    PSID owner = nullptr;
    BOOL defaulted = FALSE;
    if (!::GetSecurityDescriptorOwner(descriptor, &owner, &defaulted)) return failLastError("reading the owner");
    if (owner == nullptr) return fail("it has no owner");
    if (!isAdminsOrSystem(owner))
        return fail("its owner is " + sidText(owner) + " (only Administrators or SYSTEM may own it)");
    BOOL present = FALSE;
    PACL acl = nullptr;
    if (!::GetSecurityDescriptorDacl(descriptor, &present, &acl, &defaulted)) return failLastError("reading the DACL");
    if (!present || acl == nullptr) return fail("it has no DACL (everyone may open it)");
    for (DWORD i = 0; i < acl->AceCount; ++i) {
        void* raw = nullptr;
        if (!::GetAce(acl, i, &raw)) return failLastError("reading the DACL");
        const auto* header = static_cast<const ACE_HEADER*>(raw);
        if (header->AceType == ACCESS_DENIED_ACE_TYPE) continue;
        // Object, callback and compound allow ACEs have no place on a file.
        if (header->AceType != ACCESS_ALLOWED_ACE_TYPE)
            return fail("its DACL holds an ACE of type " + std::to_string(header->AceType) +
                        " (only Administrators and SYSTEM may be allowed)");
        const auto* ace = static_cast<const ACCESS_ALLOWED_ACE*>(raw);
        PSID sid = const_cast<DWORD*>(&ace->SidStart);
        if (!isAdminsOrSystem(sid))
            return fail("its DACL allows " + sidText(sid) + " (only Administrators and SYSTEM may be allowed)");
    }
    return {};
}

Result<std::string> daclToSddl(PSECURITY_DESCRIPTOR descriptor) {
    LPWSTR text = nullptr;
    if (!::ConvertSecurityDescriptorToStringSecurityDescriptorW(descriptor, SDDL_REVISION_1,
                                                                DACL_SECURITY_INFORMATION, &text, nullptr))
        return failLastError("rendering a security descriptor as SDDL");
    std::string out = toUtf8(text);
    ::LocalFree(text);
    return out;
}

}  // namespace secretshim::platform
