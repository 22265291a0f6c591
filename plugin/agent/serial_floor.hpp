// The highest serial this node has accepted at each of its etcd keys
// (plugin/cluster/signing.hpp): a record below it is a replay and refused.
// Kept in <state_dir>/cluster-serials.json, on disk, so that neither an
// agent restart, nor a reboot, nor a record deleted and put back can bring
// an older record in. Keys stay when their record is deleted: that is what
// refuses the put that follows. Names and numbers only, never a value.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::plugin {

class SerialFloor {
public:
    // A missing file is an empty floor (a new node); an unreadable one is an
    // error: the node could not tell a replay.
    static Result<SerialFloor> open(const std::string& stateDir);
    std::uint64_t at(const std::string& key) const;
    void raise(const std::string& key, std::uint64_t serial);
    // Drops a key that no record put back there could matter for (a copy
    // of a version below the published one).
    void forget(const std::string& key);
    // Writes the file if anything was raised since the last save.
    Result<void> save();

private:
    SerialFloor(platform::UniqueFd dir, std::string dirPath) : dir_(std::move(dir)), path_(std::move(dirPath)) {}
    platform::UniqueFd dir_;
    std::string path_;  // the state directory
    std::map<std::string, std::uint64_t> floor_;
    bool dirty_ = false;
};

}  // namespace secretshim::plugin
