#include "plugin/windows/command_lines.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "mountfs/base/version.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/windows/pipe_protocol.hpp"

namespace secretshim::plugin {
namespace {

int parse(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    return -1;
}

}  // namespace

int parseAgentArgs(int argc, char** argv, AgentArgs& out) {
    CLI::App app{"secretshimd: the secretshim node agent (Windows). Without a command it serves the pipe in the "
                 "foreground (stop it with Ctrl+C); `service install` makes it a Windows service started at boot "
                 "with the agent options given there."};
    app.set_version_flag("--version", std::string("secretshimd ") + versionString());
    app.fallthrough();  // the agent options also after `service install`
    out.pipe = kDefaultPipe;
    out.stateDir = kDefaultStateDir;
    out.maxPayload = mountfs::kDefaultMaxPayload;
    out.serviceName = kDefaultServiceName;
    auto* pipe = app.add_option("--pipe", out.pipe, "named pipe to serve (NAME or \\\\.\\pipe\\NAME)")
                     ->capture_default_str();
    auto* stateDir = app.add_option("--state-dir", out.stateDir, "state directory (node key, secrets, task records)")
                         ->capture_default_str();
    auto* maxPayload = app.add_option("--max-payload", out.maxPayload, "largest secret in bytes")
                           ->check(CLI::Range(1, 16 * 1024 * 1024))
                           ->capture_default_str();
    // What the installed service's command line passes: run under the
    // service control manager (StartServiceCtrlDispatcherW). Not for people.
    bool asService = false;
    app.add_flag("--service", asService, "run as the service the control manager started")->group("");
    auto* service = app.add_subcommand("service", "install or uninstall the agent as a Windows service (as an "
                                                  "elevated administrator)");
    service->require_subcommand(1);
    service->fallthrough();
    auto* install = service->add_subcommand(
        "install", "register the service (automatic start, LocalSystem) to run this program with the --pipe, "
                   "--state-dir and --max-payload given here; start it with `sc start NAME` or `net start NAME`");
    auto* uninstall = service->add_subcommand("uninstall", "stop the service if it runs, then delete it");
    for (CLI::App* command : {install, uninstall}) {
        command->fallthrough();
        command->add_option("--name", out.serviceName, "the service's name")->capture_default_str();
    }
    const int code = parse(app, argc, argv);
    if (code >= 0) return code;
    if ((install->parsed() || uninstall->parsed()) && asService) {
        std::fprintf(stderr, "secretshimd: --service is not for the service commands\n");
        return 2;
    }
    if (uninstall->parsed() && pipe->count() + stateDir->count() + maxPayload->count() > 0) {
        std::fprintf(stderr, "secretshimd: service uninstall takes only --name\n");
        return 2;
    }
    out.mode = install->parsed()     ? AgentArgs::Mode::install
               : uninstall->parsed() ? AgentArgs::Mode::uninstall
               : asService           ? AgentArgs::Mode::service
                                     : AgentArgs::Mode::run;
    if (pipe->count()) out.given.emplace_back("--pipe", out.pipe);
    if (stateDir->count()) out.given.emplace_back("--state-dir", out.stateDir);
    if (maxPayload->count()) out.given.emplace_back("--max-payload", std::to_string(out.maxPayload));
    return -1;
}

int parseHookArgs(int argc, char** argv, HookArgs& out) {
    CLI::App app{"secretshim-hook: prepares and cleans up a Windows task's secrets through the agent"};
    app.set_version_flag("--version", std::string("secretshim-hook ") + versionString());
    app.require_subcommand(1);
    app.fallthrough();  // --pipe and --timeout also after the subcommand
    out.pipe = kDefaultPipe;
    app.add_option("--pipe", out.pipe, "the agent's named pipe")->capture_default_str();
    app.add_option("--timeout", out.timeoutSeconds, "seconds to wait for the agent")
        ->check(CLI::Range(1u, 3600u))
        ->capture_default_str();
    auto* prepare = app.add_subcommand("prepare", "write the task's secrets into its filesystem");
    prepare->add_option("--root", out.root, "the container's filesystem root")->required();
    prepare->add_option("--task", out.task, "the task (container) id")->required();
    prepare->add_option("--secret", out.specs, "a Docker-style secret spec (repeatable)");
    prepare->add_option("--secrets", out.joined, "secret specs separated by ';' (the annotation's value)");
    auto* cleanup = app.add_subcommand("cleanup", "overwrite and remove the task's secrets");
    cleanup->add_option("--root", out.root, "the container's filesystem root")->required();
    cleanup->add_option("--task", out.task, "the task (container) id")->required();
    const int code = parse(app, argc, argv);
    out.prepare = prepare->parsed();
    return code;
}

int parseCtlArgs(int argc, char** argv, CtlArgs& out) {
    CLI::App app{"secretshimctl: manage the secrets of a Windows node's secretshim agent"};
    app.set_version_flag("--version", std::string("secretshimctl ") + versionString());
    app.require_subcommand(1);
    app.fallthrough();
    out.pipe = kDefaultPipe;
    app.add_option("--pipe", out.pipe, "the agent's named pipe")->capture_default_str();
    auto* secret = app.add_subcommand("secret", "manage secrets");
    secret->require_subcommand(1);
    secret->fallthrough();
    auto* create = secret->add_subcommand("create", "store a new secret (value from FILE or stdin)");
    create->add_option("name", out.name)->required();
    create->add_option("file", out.file, "file holding the value, or - for stdin");
    auto* rotate =
        secret->add_subcommand("rotate", "replace a secret's value (from FILE or stdin); running tasks get it");
    rotate->add_option("name", out.name)->required();
    rotate->add_option("file", out.file, "file holding the value, or - for stdin");
    auto* ls = secret->add_subcommand("ls", "list secrets (never their values)");
    ls->add_option("--format", out.format)->check(CLI::IsMember({"json"}));
    auto* inspect = secret->add_subcommand("inspect", "show a secret's metadata (never its value)");
    inspect->add_option("name", out.name)->required();
    auto* rm = secret->add_subcommand("rm", "remove a secret no task uses");
    rm->add_option("name", out.name)->required();
    auto* task = app.add_subcommand("task", "prepared tasks");
    task->require_subcommand(1);
    task->fallthrough();
    auto* taskLs = task->add_subcommand("ls", "list prepared tasks and the secrets they hold");
    taskLs->add_option("--format", out.format)->check(CLI::IsMember({"json"}));
    auto* status = app.add_subcommand("status", "the agent's status");
    const int code = parse(app, argc, argv);
    out.command = create->parsed()    ? CtlArgs::Command::create
                  : rotate->parsed()  ? CtlArgs::Command::rotate
                  : inspect->parsed() ? CtlArgs::Command::inspect
                  : rm->parsed()      ? CtlArgs::Command::rm
                  : taskLs->parsed()  ? CtlArgs::Command::taskLs
                  : status->parsed()  ? CtlArgs::Command::status
                                      : CtlArgs::Command::ls;
    return code;
}

}  // namespace secretshim::plugin
