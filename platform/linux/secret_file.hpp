// Writing one secret's file in a view: its content, then its owner and
// mode, set through the fd (never a path the container could redirect).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "mountfs/secrets_view.hpp"

namespace secretshim::platform {

// The unit the view's tmpfs counts room in.
inline constexpr std::size_t kPage = 4096;
inline std::size_t pages(std::size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

// A failed call that writes to a view's tmpfs (`fd`: any fd on it), from
// errno: out of room (ENOSPC) names the cap the view was built with that it
// hit, the size (bytes) or the inode count (files and directories).
tl::unexpected<Error> failOnView(int fd, const std::string& doing);

// Fills a new, empty file with `data`, then sets the reference's owner and
// mode.
Result<void> fillSecretFile(int fd, mountfs::Bytes data, const mountfs::SecretRef& ref);

// Creates the file at `path` below `root` (never an existing one) and fills
// it as fillSecretFile() does.
Result<void> writeSecretFile(int root, const std::string& path, mountfs::Bytes data, const mountfs::SecretRef& ref);

// Creates the file at `path` below `root` holding payload `index` of
// `source`, written by the source itself piece by piece. If the source
// fails midway, what it wrote is zeroed and the file removed before the
// error returns.
Result<void> writeSecretFileFrom(int root, const std::string& path, const mountfs::PayloadSource& source,
                                 std::size_t index, const mountfs::SecretRef& ref);

// A directory of the view with exactly `mode`, whatever the umask.
Result<void> makeDirectory(int root, const std::string& path, mode_t mode);

}  // namespace secretshim::platform
