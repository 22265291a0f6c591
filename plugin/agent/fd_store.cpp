#include "plugin/agent/fd_store.hpp"

namespace secretshim::plugin {

// systemd ignores a name that is longer than 255 characters or holds a
// control character, a non-ASCII byte or ':' (the separator of
// $LISTEN_FDNAMES). Runtimes' container ids (64 hex digits; runc allows
// [A-Za-z0-9_+.-]) pass unchanged; anything else becomes '_'. Two ids that
// come out the same are told apart at start by their view's device, which
// the record keeps.
std::string fdStoreName(const TaskRecord& record) {
    std::string name = record.id.substr(0, 255);
    for (char& c : name)
        if (c < ' ' || c > '~' || c == ':') c = '_';
    return name;
}

}  // namespace secretshim::plugin
