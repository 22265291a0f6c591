#include "plugin/wrapper/runtime_args.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace secretshim::plugin {
namespace {

// Options that take a separate value, globally (runc 1.1, crun 1.8) and
// for `create`: their value must not be taken for the command or bundle.
constexpr std::array<std::string_view, 8> kGlobalWithValue = {
    "--root", "--log", "--log-format", "--criu", "--rootless", "--cgroup-manager", "--log-level", "--debug-log"};
constexpr std::array<std::string_view, 4> kCreateWithValue = {"--console-socket", "--pid-file", "--preserve-fds",
                                                              "--config"};

bool takesValue(std::string_view arg, const auto& list) {
    return std::find(list.begin(), list.end(), arg) != list.end();
}

}  // namespace

RuntimeCommand parseRuntimeCommand(const std::vector<std::string>& args) {
    RuntimeCommand out;
    std::size_t i = 0;
    for (; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") { ++i; break; }
        if (a.empty() || a[0] != '-') break;
        if (a.find('=') == std::string::npos && takesValue(a, kGlobalWithValue)) ++i;
    }
    if (i >= args.size()) return out;
    out.command = args[i];
    if (out.command != "create" && out.command != "run") return out;
    for (++i; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") break;
        if (a.empty() || a[0] != '-') continue;  // the container id
        if (a == "--bundle" || a == "-b") {
            if (i + 1 < args.size()) out.bundle = args[++i];
        } else if (a.rfind("--bundle=", 0) == 0) {
            out.bundle = a.substr(9);
        } else if (a.rfind("-b=", 0) == 0) {
            out.bundle = a.substr(3);
        } else if (a.find('=') == std::string::npos && takesValue(a, kCreateWithValue)) {
            ++i;
        }
    }
    return out;
}

}  // namespace secretshim::plugin
