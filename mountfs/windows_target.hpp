// Secret references for Windows containers, in Docker's --secret syntax:
// the same specs as on Linux, but targets are Windows paths inside the
// container, and uid, gid and mode are refused (Docker ignores them on
// Windows with a warning; a refusal says so instead of dropping them).
//
// Layout, as Docker lays it out in a Windows container:
//   C:\ProgramData\Docker\internal\secrets\<n>   one file per reference
//   <target>                                     a symbolic link to it
// The internal files are named by reference index, so two references (even
// to the same secret) never share a file.
//
// Everything here is platform-neutral so that it is tested on Linux too.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secret_ref.hpp"
#include "mountfs/view_layout.hpp"

namespace secretshim::mountfs {

inline constexpr std::string_view kWindowsSecretsDir = "C:\\ProgramData\\Docker\\secrets";
inline constexpr std::string_view kWindowsInternalDir = "C:\\ProgramData\\Docker\\internal\\secrets";
// MAX_PATH less its NUL: longer paths are unreachable for programs in the
// container that did not opt into long paths.
inline constexpr std::size_t kWindowsMaxTarget = 259;

// Checks a target and returns its canonical form: "C:\" and components
// separated by single backslashes. Forward slashes are taken as
// backslashes (Win32 does the same); a relative target is taken under
// C:\ProgramData\Docker\secrets; an empty one means that directory plus
// `source`. Refused: other drives, drive-relative ("C:x") and rooted ("\x",
// UNC, "\\?\") paths, "." and ".." components, empty components, device
// names (CON, PRN, AUX, NUL, COM0-9, LPT0-9, CONIN$, CONOUT$, with or
// without an extension), ':' after the drive (alternate data streams),
// <>"|?* and control characters, a component ending in a dot or a space,
// components over 255 UTF-16 units, paths over kWindowsMaxTarget, invalid
// UTF-8, and paths that would hide the secrets or the internal directory.
// The message is "target "<raw>" <why>".
Result<std::string> cleanWindowsTarget(std::string_view raw, std::string_view source);

// Parses one spec with the Linux parser (keys, duplicates, the secret's
// name), refusing uid, gid and mode, and takes the target as a Windows path.
// The reference keeps uid 0, gid 0 and kDefaultMode.
Result<SecretRef> parseWindowsSecretRef(std::string_view spec);

// Parses an annotation value (specs separated by ';') and checks the set.
Result<std::vector<SecretRef>> parseWindowsSecretRefs(std::string_view annotation);

// Checks a set of Windows references: each target canonical (as
// cleanWindowsTarget returns it), no uid/gid/mode, no two targets equal
// and none inside another (paths compared case-insensitively).
Result<void> validateWindowsRefs(const std::vector<SecretRef>& refs);

// Plans a Windows view: entry i's `file` is the container path of its
// internal file (windowsInternalFile(i)); `inDirectory` is false and
// `directories` empty.
Result<ViewLayout> planWindowsView(const std::vector<SecretRef>& refs);

// C:\ProgramData\Docker\internal\secrets\<index>
std::string windowsInternalFile(std::size_t index);

// Case-insensitive (ASCII) comparison of two canonical Windows paths, and
// whether `path` lies strictly inside `dir`.
bool sameWindowsPath(std::string_view a, std::string_view b);
bool isInsideWindowsPath(std::string_view path, std::string_view dir);

// The components of a canonical path below its drive: "C:\a\b" -> {a, b}.
std::vector<std::string> windowsPathComponents(std::string_view path);

// The text of a relative symbolic link placed at `link` that reaches
// `file` (both canonical), e.g. ..\internal\secrets\0. Relative, so that a
// host-side reader that follows it stays inside the container's filesystem
// (an absolute C:\ target would name the host's own C: there).
std::string windowsLinkText(std::string_view link, std::string_view file);

}  // namespace secretshim::mountfs
