#include "platform/linux/id_map.hpp"

#include <fcntl.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "platform/linux/read_all.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {
namespace {

bool parseNumber(std::string_view& text, std::uint32_t& out) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || end == text.data()) return false;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    return true;
}

}  // namespace

Result<IdMap> IdMap::parse(std::string_view text) {
    IdMap map;
    while (!text.empty()) {
        const std::size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (line.find_first_not_of(' ') == std::string_view::npos) continue;
        Range r{};
        if (!parseNumber(line, r.inside) || !parseNumber(line, r.outside) || !parseNumber(line, r.count) ||
            line.find_first_not_of(' ') != std::string_view::npos || r.count == 0 ||
            r.inside > UINT32_MAX - (r.count - 1) || r.outside > UINT32_MAX - (r.count - 1))
            return fail("malformed id map line " + quote(line));
        map.ranges_.push_back(r);
    }
    return map;
}

Result<IdMap> IdMap::read(int procDir, pid_t pid, const char* kind) {
    const std::string path = std::string(procDir == AT_FDCWD ? "/proc/" : "") + std::to_string(pid) + "/" +
                             kind + "_map";
    UniqueFd fd(::openat(procDir, path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failErrno(std::string("reading the container's ") + kind + "_map");
    auto text = readAll(fd.get(), 65536, std::string("the container's ") + kind + "_map");
    if (!text) return propagate(text);
    return parse(*text);
}

Result<std::uint32_t> IdMap::toHost(std::uint32_t inside) const {
    for (const Range& r : ranges_)
        if (inside >= r.inside && inside - r.inside < r.count) return r.outside + (inside - r.inside);
    return fail(std::to_string(inside) + " has no mapping in the container's user namespace");
}

bool IdMap::identity() const {
    return ranges_.size() == 1 && ranges_[0].inside == 0 && ranges_[0].outside == 0 &&
           ranges_[0].count == UINT32_MAX;
}

Result<HostIds> containerRootIds(pid_t pid) {
    auto uids = IdMap::read(AT_FDCWD, pid, "uid");
    if (!uids) return propagate(uids);
    auto gids = IdMap::read(AT_FDCWD, pid, "gid");
    if (!gids) return propagate(gids);
    auto uid = uids->toHost(0);
    auto gid = gids->toHost(0);
    if (!uid || !gid) return fail("the container's root has no mapping to the host");
    return HostIds{static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)};
}

Result<void> actAs(HostIds ids) {
    ::setfsgid(ids.gid);
    ::setfsuid(ids.uid);
    if (static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) != ids.uid ||
        static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1))) != ids.gid)
        return fail("cannot act as the container's root (host uid " + std::to_string(ids.uid) + ")");
    return {};
}

}  // namespace secretshim::platform
