// The command lines of the three Windows programs, parsed with CLI11 in one
// translation unit: CLI11 is all headers and costs ~15 s of compiling per
// file that includes it, so the programs share this one.
//
// Each parse function fills its struct and returns -1 to go on, or the
// exit code to return at once (0 after --help, 2 after a usage error that
// CLI11 has printed).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace secretshim::plugin {

inline constexpr const char* kDefaultServiceName = "secretshimd";

struct AgentArgs {
    // run: in the foreground (a console); service: started by the service
    // control manager (the hidden --service flag of the installed command
    // line); install, uninstall: `service install` / `service uninstall`.
    enum class Mode { run, service, install, uninstall } mode = Mode::run;
    std::string pipe;
    std::string stateDir;
    std::size_t maxPayload = 0;
    std::string serviceName;  // install, uninstall
    // The agent options given on the command line as (option, value), for
    // `service install` to run the service with.
    std::vector<std::pair<std::string, std::string>> given;
};

struct HookArgs {
    bool prepare = false;  // else cleanup
    std::string root;
    std::string task;
    std::string pipe;
    unsigned timeoutSeconds = 30;
    std::vector<std::string> specs;  // --secret, repeatable
    std::string joined;              // --secrets "A;B"
};

struct CtlArgs {
    enum class Command { create, rotate, ls, inspect, rm, taskLs, status } command = Command::ls;
    std::string pipe;
    std::string name;
    std::string file;    // create, rotate: a path, "-" or empty (stdin)
    std::string format;  // secret ls, task ls: "" or "json"
};

int parseAgentArgs(int argc, char** argv, AgentArgs& out);
int parseHookArgs(int argc, char** argv, HookArgs& out);
int parseCtlArgs(int argc, char** argv, CtlArgs& out);

}  // namespace secretshim::plugin
