// Tests for the internal secrets directory's security descriptor
// (platform/windows/security_descriptor): its SDDL and the ACL structure
// built in code, inspected through the Win32 API under wine.
#include <doctest/doctest.h>

#include <aclapi.h>
#include <sddl.h>
#include <windows.h>

#include <string>
#include <utility>

#include "platform/windows/real_win_fs.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "tests/support/skip.hpp"
#include "tests/windows/test_support.hpp"

using namespace secretshim;
using namespace secretshim::platform;
using namespace secretshim::testing;

namespace {

SecurityDescriptor built() {
    auto sd = SecurityDescriptor::adminsAndSystemOnly();
    if (!sd) FAIL_CHECK(sd.error().message);
    REQUIRE(sd.has_value());
    return std::move(*sd);
}

bool isWellKnown(PSID sid, WELL_KNOWN_SID_TYPE type) {
    alignas(DWORD) BYTE expected[SECURITY_MAX_SID_SIZE] = {};
    DWORD size = sizeof expected;
    return ::CreateWellKnownSid(type, nullptr, expected, &size) && ::EqualSid(sid, expected);
}

}  // namespace

TEST_CASE("the DACL grants Administrators and SYSTEM only, protected, in SDDL") {
    const SecurityDescriptor sd = built();
    const auto sddl = sd.sddl();
    REQUIRE(sddl.has_value());
    CHECK(*sddl == "D:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)");
    CHECK(*sddl == kAdminsAndSystemSddl);
}

TEST_CASE("the ACL built in code has exactly the two inheritable full-access ACEs") {
    const SecurityDescriptor sd = built();
    REQUIRE(::IsValidSecurityDescriptor(sd.get()));

    SECURITY_DESCRIPTOR_CONTROL control = 0;
    DWORD revision = 0;
    REQUIRE(::GetSecurityDescriptorControl(sd.get(), &control, &revision));
    CHECK((control & SE_DACL_PRESENT) != 0);
    CHECK((control & SE_DACL_PROTECTED) != 0);
    CHECK((control & SE_DACL_DEFAULTED) == 0);

    BOOL present = FALSE, defaulted = TRUE;
    PACL acl = nullptr;
    REQUIRE(::GetSecurityDescriptorDacl(sd.get(), &present, &acl, &defaulted));
    CHECK(present);
    CHECK_FALSE(defaulted);
    REQUIRE(acl != nullptr);
    CHECK(acl == sd.dacl());
    REQUIRE(::IsValidAcl(acl));

    ACL_SIZE_INFORMATION info{};
    REQUIRE(::GetAclInformation(acl, &info, sizeof info, AclSizeInformation));
    REQUIRE(info.AceCount == 2);
    const WELL_KNOWN_SID_TYPE expected[2] = {WinBuiltinAdministratorsSid, WinLocalSystemSid};
    for (DWORD i = 0; i < info.AceCount; ++i) {
        CAPTURE(i);
        void* raw = nullptr;
        REQUIRE(::GetAce(acl, i, &raw));
        auto* ace = static_cast<ACCESS_ALLOWED_ACE*>(raw);
        CHECK(ace->Header.AceType == ACCESS_ALLOWED_ACE_TYPE);
        CHECK(ace->Header.AceFlags == (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE));
        CHECK(ace->Mask == FILE_ALL_ACCESS);
        PSID sid = &ace->SidStart;
        CHECK(isWellKnown(sid, expected[i]));
        CHECK_FALSE(isWellKnown(sid, WinWorldSid));
        CHECK_FALSE(isWellKnown(sid, WinBuiltinUsersSid));
    }
}

TEST_CASE("the descriptor stays valid when its owner is copied or moved") {
    SecurityDescriptor first = built();
    const SecurityDescriptor copy = first;
    SecurityDescriptor moved = std::move(first);
    CHECK(copy.sddl().value_or("") == kAdminsAndSystemSddl);
    CHECK(moved.sddl().value_or("") == kAdminsAndSystemSddl);
}

TEST_CASE("Windows parses the same SDDL into the same ACL") {
    PSECURITY_DESCRIPTOR parsed = nullptr;
    REQUIRE(::ConvertStringSecurityDescriptorToSecurityDescriptorW(
        L"D:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)", SDDL_REVISION_1, &parsed, nullptr));
    const auto text = daclToSddl(parsed);
    ::LocalFree(parsed);
    REQUIRE(text.has_value());
    CHECK(*text == kAdminsAndSystemSddl);
}

TEST_CASE("a directory is created with the descriptor" *
          doctest::skip(skipUnless(!runningUnderWine(), "wine 8 does not apply ACLs: a directory's DACL is not "
                                                        "the one it was created with"))) {
    TempDir temp(L"acl");
    const SecurityDescriptor sd = built();
    RealWinFs fs;
    const std::wstring dir = temp.path() + L"\\secrets";
    REQUIRE(fs.createDirectory(dir, &sd).has_value());
    const std::wstring other = temp.path() + L"\\other";
    REQUIRE(fs.createDirectory(other, nullptr).has_value());
    REQUIRE(fs.protectDirectory(other, sd).has_value());

    for (const std::wstring& path : {dir, other}) {
        PSECURITY_DESCRIPTOR got = nullptr;
        PACL dacl = nullptr;
        REQUIRE(::GetNamedSecurityInfoW(path.c_str(), SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, nullptr,
                                        nullptr, &dacl, nullptr, &got) == ERROR_SUCCESS);
        const auto text = daclToSddl(got);
        ::LocalFree(got);
        REQUIRE(text.has_value());
        CHECK(*text == kAdminsAndSystemSddl);
    }
}

namespace {

// checkAdminsAndSystemOnly on a descriptor parsed from SDDL.
Result<void> checkSddl(const wchar_t* sddl) {
    PSECURITY_DESCRIPTOR sd = nullptr;
    REQUIRE(::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, nullptr));
    auto result = checkAdminsAndSystemOnly(sd);
    ::LocalFree(sd);
    return result;
}

std::string refusal(const wchar_t* sddl) {
    auto r = checkSddl(sddl);
    return r ? std::string("accepted") : r.error().message;
}

}  // namespace

TEST_CASE("an existing directory is private only if owned by and open to Administrators and SYSTEM alone") {
    CHECK(checkSddl(L"O:BAD:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)").has_value());
    CHECK(checkSddl(L"O:SYD:P(A;OICI;FA;;;SY)").has_value());
    CHECK(checkSddl(L"O:BAD:(D;;FA;;;WD)(A;OICI;FA;;;BA)").has_value());  // a deny ACE keeps others out too
    CHECK(refusal(L"O:BUD:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)") ==
          "its owner is S-1-5-32-545 (only Administrators or SYSTEM may own it)");
    CHECK(refusal(L"O:S-1-5-21-1-2-3-1001D:P(A;OICI;FA;;;BA)") ==
          "its owner is S-1-5-21-1-2-3-1001 (only Administrators or SYSTEM may own it)");
    CHECK(refusal(L"O:BAD:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;FR;;;BU)") ==
          "its DACL allows S-1-5-32-545 (only Administrators and SYSTEM may be allowed)");
    CHECK(refusal(L"O:BAD:(A;OICIIO;FA;;;CO)(A;OICI;FA;;;BA)") ==
          "its DACL allows S-1-3-0 (only Administrators and SYSTEM may be allowed)");
    CHECK(refusal(L"O:BAD:") == "accepted");  // an empty DACL lets no one in
    // A NULL DACL lets everyone in (built in code: wine's SDDL parser reads
    // "D:NO_ACCESS_CONTROL" as an empty DACL).
    SECURITY_DESCRIPTOR nullDacl{};
    alignas(DWORD) BYTE admins[SECURITY_MAX_SID_SIZE] = {};
    DWORD size = sizeof admins;
    REQUIRE(::CreateWellKnownSid(WinBuiltinAdministratorsSid, nullptr, admins, &size));
    REQUIRE(::InitializeSecurityDescriptor(&nullDacl, SECURITY_DESCRIPTOR_REVISION));
    REQUIRE(::SetSecurityDescriptorOwner(&nullDacl, admins, FALSE));
    REQUIRE(::SetSecurityDescriptorDacl(&nullDacl, TRUE, nullptr, FALSE));
    auto open = checkAdminsAndSystemOnly(&nullDacl);
    REQUIRE_FALSE(open.has_value());
    CHECK(open.error().message == "it has no DACL (everyone may open it)");
    CHECK(refusal(L"O:BA") == "it has no DACL (everyone may open it)");
    CHECK(refusal(L"D:P(A;OICI;FA;;;BA)") == "it has no owner");
}
