// Writing a whole file atomically: a reader, or the node after a crash,
// sees either no file (or the old one) or the complete new one.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::plugin {

enum class IfExists {
    fail,     // an existing name gives Error{EEXIST, ...}, even in a race
    replace,
};

enum class Durability {
    machineCrash,  // fsync the file and the directory: survives a power loss
    processCrash,  // no fsync: survives a crash of the writer, not of the node
};

// Writes `data` to `name` in dirFd via a temporary file in the same
// directory (O_EXCL|O_NOFOLLOW), fsync, rename, fsync of the directory
// (the two fsyncs only for Durability::machineCrash).
// The mode is set exactly, whatever the umask; running as root, the file
// is owned by root:root. `dirPath` only names the directory in errors.
Result<void> writeFileAtomic(int dirFd, const std::string& dirPath, const std::string& name,
                             std::span<const unsigned char> data, mode_t mode, IfExists ifExists,
                             Durability durability = Durability::machineCrash);

}  // namespace secretshim::plugin
