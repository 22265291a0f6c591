#include "plugin/agent/serial_floor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "plugin/store/atomic_file.hpp"
#include "plugin/store/private_path.hpp"

namespace secretshim::plugin {

namespace {
constexpr const char* kFile = "cluster-serials.json";
constexpr std::uint64_t kMaxFile = 64u << 20;
}  // namespace

Result<SerialFloor> SerialFloor::open(const std::string& stateDir) {
    auto dir = openOrCreateDir(AT_FDCWD, stateDir, "state directory " + stateDir, DirAccess::any);
    if (!dir) return propagate(dir);
    const std::string label = stateDir + "/" + kFile;
    SerialFloor floor(std::move(*dir), stateDir);
    auto text = readPrivateText(floor.dir_.get(), kFile, label, kMaxFile);
    if (!text && text.error().code == ENOENT) return floor;
    if (!text) return propagate(text);
    const auto j = nlohmann::json::parse(*text, nullptr, false);
    const std::string broken = label + " is damaged: the node cannot tell a replayed record (move it away to accept "
                                       "what etcd holds now)";
    if (!j.is_object()) return fail(broken);
    for (const auto& [key, value] : j.items()) {
        if (!value.is_number_unsigned()) return fail(broken);
        floor.floor_[key] = value.get<std::uint64_t>();
    }
    return floor;
}

std::uint64_t SerialFloor::at(const std::string& key) const {
    const auto it = floor_.find(key);
    return it == floor_.end() ? 0 : it->second;
}

void SerialFloor::raise(const std::string& key, std::uint64_t serial) {
    auto& held = floor_[key];
    if (serial <= held) return;
    held = serial;
    dirty_ = true;
}

void SerialFloor::forget(const std::string& key) {
    if (floor_.erase(key)) dirty_ = true;
}

Result<void> SerialFloor::save() {
    if (!dirty_) return {};
    const std::string text = nlohmann::json(floor_).dump();
    auto ok = writeFileAtomic(dir_.get(), path_, kFile, {reinterpret_cast<const unsigned char*>(text.data()), text.size()},
                              0600, IfExists::replace);
    if (ok) dirty_ = false;
    return ok;
}

}  // namespace secretshim::plugin
