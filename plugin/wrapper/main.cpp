// secretshim-runtime: an OCI runtime wrapper for containerd (`ctr run
// --runc-binary`, the CRI plugin's BinaryName). On `create` (and `run`) it
// adds secretshim's createRuntime and poststop hooks to the bundle's
// config.json when an annotation asks for secrets, then execs the real
// runtime with the same arguments; every other command is exec'd as it is.
//
// Who starts the container is told by the name the wrapper runs under, set
// by the admin's configuration: `secretshim-runtime` for `ctr run` (root
// wrote the command), `secretshim-runtime-cri` (a link to it) as the CRI
// plugin's BinaryName (a Kubernetes pod). The hook gets it as --integration.
//
// Settings, from the environment (containerd passes its own to the shim):
//   SECRETSHIM_RUNTIME  the real runtime: a name looked up in PATH, or an
//                       absolute path (default "runc"); a leading
//                       --secretshim-runtime=PATH argument overrides it
//   SECRETSHIM_HOOK     the hook (default: where meson installs it)
//   SECRETSHIM_SOCKET   the agent's socket (default: the hook's own)
// It links neither the store nor the agent: it only edits a JSON file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mountfs/base/version.hpp"
#include "platform/linux/read_all.hpp"
#include "platform/linux/unique_fd.hpp"
#include "plugin/wrapper/runtime_args.hpp"
#include "plugin/wrapper/spec_hooks.hpp"

#ifndef SECRETSHIM_DEFAULT_HOOK
#error "SECRETSHIM_DEFAULT_HOOK must name the installed hook"
#endif

using namespace secretshim;
using namespace secretshim::plugin;
using platform::UniqueFd;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxConfig = 16 << 20;

std::string envOr(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

bool isExecutableFile(const std::string& path, struct stat& st) {
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The real runtime, as an absolute path. PATH's relative entries are
// skipped (they would depend on the bundle the shim runs in), and so is
// this very program: installed as "runc" earlier in PATH, it would exec
// itself forever.
Result<std::string> resolveRuntime(const std::string& name) {
    struct stat self {};
    const bool haveSelf = ::stat("/proc/self/exe", &self) == 0;
    const auto isSelf = [&](const struct stat& st) {
        return haveSelf && st.st_dev == self.st_dev && st.st_ino == self.st_ino;
    };
    struct stat st {};
    if (name.find('/') != std::string::npos) {
        if (name.front() != '/') return fail("the runtime " + quote(name) + " is not an absolute path");
        if (!isExecutableFile(name, st)) return fail("the runtime " + quote(name) + " is not an executable file");
        if (isSelf(st)) return fail("the runtime " + quote(name) + " is this wrapper itself");
        return name;
    }
    const std::string path = envOr("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (std::size_t begin = 0; begin <= path.size();) {
        std::size_t end = path.find(':', begin);
        if (end == std::string::npos) end = path.size();
        const std::string dir = path.substr(begin, end - begin);
        begin = end + 1;
        if (dir.empty() || dir.front() != '/') continue;
        const std::string candidate = dir + "/" + name;
        if (isExecutableFile(candidate, st) && !isSelf(st)) return candidate;
    }
    return fail("the runtime " + quote(name) + " was not found in PATH");
}

Result<std::string> readConfig(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno("inspecting config.json");
    if (!S_ISREG(st.st_mode)) return fail("config.json is not a regular file");
    return platform::readAll(fd, kMaxConfig, "config.json");
}

// Replaces config.json through a temporary file in the bundle: the runtime
// (or a crash) sees the old file or the whole new one. Same owner and mode.
Result<void> replaceConfig(int dir, const std::string& text, const struct stat& old) {
    const std::string temp = ".config.json.secretshim-" + std::to_string(::getpid());
    (void)::unlinkat(dir, temp.c_str(), 0);
    UniqueFd fd(::openat(dir, temp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return failErrno("creating a temporary config.json");
    Result<void> result;
    for (std::size_t done = 0; result && done < text.size();) {
        const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) result = failErrno("writing config.json");
        else done += static_cast<std::size_t>(n);
    }
    if (result && ::fchown(fd.get(), old.st_uid, old.st_gid) != 0) result = failErrno("setting config.json's owner");
    if (result && ::fchmod(fd.get(), old.st_mode & 07777) != 0) result = failErrno("setting config.json's mode");
    if (result && ::fsync(fd.get()) != 0) result = failErrno("syncing config.json");
    if (result && ::renameat(dir, temp.c_str(), dir, "config.json") != 0) result = failErrno("replacing config.json");
    if (!result) (void)::unlinkat(dir, temp.c_str(), 0);
    return result;
}

Result<void> addHooksToBundle(const std::string& bundle, const HookSettings& settings) {
    UniqueFd dir(::open(bundle.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return failErrno("opening the bundle");
    UniqueFd fd(::openat(dir.get(), "config.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return failErrno("opening config.json");
    auto text = readConfig(fd.get());
    if (!text) return propagate(text);
    json spec = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (spec.is_discarded()) return fail("config.json is not valid JSON");
    if (!specAsksForSecrets(spec)) return {};  // the common case: untouched
    auto changed = addSecretshimHooks(spec, settings);
    if (!changed) return propagate(changed);
    if (!*changed) return {};
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return failErrno("inspecting config.json");
    return replaceConfig(dir.get(), spec.dump(), st);
}

int die(const std::string& message) {
    std::fprintf(stderr, "secretshim-runtime: %s\n", message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string runtimeName = envOr("SECRETSHIM_RUNTIME", "runc");
    std::size_t skip = 0;
    if (!args.empty() && args[0].rfind("--secretshim-runtime=", 0) == 0) {
        runtimeName = args[0].substr(21);
        skip = 1;
    }
    args.erase(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(skip));
    const std::string self = argv[0];
    const std::string name = self.substr(self.rfind('/') + 1);
    // Ours first, then the real runtime's (exec'd below like any command).
    // Only under our own names: installed as "runc", the wrapper's
    // --version stays the real runtime's, whose first line callers parse.
    if (args.size() == 1 && args[0] == "--version" && name.rfind("secretshim-runtime", 0) == 0) {
        std::printf("secretshim-runtime %s\n", versionString());
        std::fflush(stdout);
    }
    auto runtime = resolveRuntime(runtimeName);
    if (!runtime) return die(runtime.error().message);

    const RuntimeCommand cmd = parseRuntimeCommand(args);
    if (cmd.command == "create" || cmd.command == "run") {
        const std::string bundle = cmd.bundle.value_or(".");
        HookSettings settings;
        settings.hookPath = envOr("SECRETSHIM_HOOK", SECRETSHIM_DEFAULT_HOOK);
        settings.socket = envOr("SECRETSHIM_SOCKET", "");
        if (name == "secretshim-runtime-cri") settings.integration = "containerd-cri";
        if (auto ok = addHooksToBundle(bundle, settings); !ok)
            return die("bundle " + quote(bundle) + ": " + ok.error().message);
    }

    std::vector<char*> execArgs;
    execArgs.push_back(runtime->data());
    for (auto& a : args) execArgs.push_back(a.data());
    execArgs.push_back(nullptr);
    ::execv(runtime->c_str(), execArgs.data());
    return die("running " + quote(*runtime) + ": " + std::strerror(errno));
}
