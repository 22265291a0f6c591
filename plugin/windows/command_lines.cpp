#include "plugin/windows/command_lines.hpp"

#include <CLI/CLI.hpp>

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
    CLI::App app{"secretshimd: the secretshim node agent (Windows)"};
    out.pipe = kDefaultPipe;
    out.stateDir = kDefaultStateDir;
    out.maxPayload = mountfs::kDefaultMaxPayload;
    app.add_option("--pipe", out.pipe, "named pipe to serve (NAME or \\\\.\\pipe\\NAME)")->capture_default_str();
    app.add_option("--state-dir", out.stateDir, "state directory (node key, secrets, task records)")
        ->capture_default_str();
    app.add_option("--max-payload", out.maxPayload, "largest secret in bytes")
        ->check(CLI::Range(1, 16 * 1024 * 1024))
        ->capture_default_str();
    return parse(app, argc, argv);
}

int parseHookArgs(int argc, char** argv, HookArgs& out) {
    CLI::App app{"secretshim-hook: prepares and cleans up a Windows task's secrets through the agent"};
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
