// secretshimctl.exe: the admin CLI on Windows, over the agent's pipe (the
// subset of the Linux CLI a Windows node needs):
//   secretshimctl.exe secret create NAME [FILE|-]   (- or nothing: stdin)
//   secretshimctl.exe secret rotate NAME [FILE|-]   (running tasks get the new value)
//   secretshimctl.exe secret ls [--format json]
//   secretshimctl.exe secret inspect NAME
//   secretshimctl.exe secret rm NAME                (refused while a task uses it)
//   secretshimctl.exe task ls [--format json]
//   secretshimctl.exe status
// Exit codes: 0 ok, 1 error, 2 usage. The value goes to the agent in hex
// chunks over the pipe (no memfd on Windows); the buffers are wiped.
#include <windows.h>
#include <fcntl.h>
#include <io.h>

#include <cstdio>

#include "mountfs/base/hex.hpp"
#include "mountfs/secret_ref.hpp"
#include "plugin/protocol/json_fields.hpp"
#include "plugin/protocol/messages.hpp"
#include "plugin/store/secure_buffer.hpp"
#include "plugin/windows/command_lines.hpp"
#include "plugin/windows/pipe_channel.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/windows/utf8_args.hpp"

using namespace secretshim;
using namespace secretshim::plugin;
using nlohmann::json;

namespace {

constexpr Millis kTimeout{30000};

int failLine(const std::string& message) {
    std::fprintf(stderr, "secretshimctl: %s\n", message.c_str());
    return 1;
}

// The whole value, at most maxBytes (+1 to see that it is larger).
Result<SecureBuffer> readValue(const std::string& file, std::size_t maxBytes) {
    FILE* in = stdin;
    if (file.empty() || file == "-") {
        ::_setmode(::_fileno(stdin), _O_BINARY);
    } else {
        auto wide = platform::toUtf16(file);
        if (!wide || (in = ::_wfopen(wide->c_str(), L"rb")) == nullptr) return fail("cannot open " + quote(file));
    }
    auto buffer = SecureBuffer::allocate(maxBytes + 1);
    if (!buffer) return buffer;
    std::size_t size = 0;
    while (size < buffer->size()) {
        const std::size_t n = std::fread(buffer->data() + size, 1, buffer->size() - size, in);
        if (n == 0) break;
        size += n;
    }
    if (in != stdin) std::fclose(in);
    if (auto ok = mountfs::checkPayloadSize("value", size, maxBytes); !ok) return propagate(ok);
    auto exact = SecureBuffer::allocate(size);
    if (!exact) return exact;
    std::copy_n(buffer->data(), size, exact->data());
    return exact;
}

Result<json> call(PipeConnection& connection, const json& request) {
    if (auto ok = connection.send(request, kTimeout); !ok) return propagate(ok);
    auto reply = connection.receive(kTimeout);
    if (!reply) return propagate(reply);
    if (auto ok = checkOk(*reply); !ok) return propagate(ok);
    return reply;
}

Result<json> createSecret(PipeConnection& connection, const std::string& name, const SecureBuffer& value,
                          bool rotate) {
    if (auto ok = connection.send(SecretCreateRequest{name, {}, value.size(), {}, rotate}.toJson(), kTimeout); !ok)
        return propagate(ok);
    for (std::size_t done = 0; done < value.size(); done += kSecretChunk) {
        const std::size_t n = std::min(kSecretChunk, value.size() - done);
        json chunk = SecretDataMessage{std::string(n * 2, '0')}.toJson();
        auto& hex = chunk["hex"].get_ref<std::string&>();
        hexEncodeTo({value.data() + done, n}, hex.data());
        auto ok = connection.send(chunk, kTimeout);
        ::SecureZeroMemory(hex.data(), hex.size());
        if (!ok) return propagate(ok);
    }
    auto reply = connection.receive(kTimeout);
    if (!reply) return propagate(reply);
    if (auto ok = checkOk(*reply); !ok) return propagate(ok);
    return reply;
}

}  // namespace

int main() {
    Utf8Args args;
    CtlArgs parsed;
    if (const int code = parseCtlArgs(args.argc(), args.argv(), parsed); code >= 0) return code;
    const std::string& name = parsed.name;
    const bool rotating = parsed.command == CtlArgs::Command::rotate;
    const bool creating = parsed.command == CtlArgs::Command::create || rotating;

    auto path = pipePath(parsed.pipe);
    if (!path) return failLine(path.error().message);
    // The value is read before the agent is contacted, so a bad file
    // leaves no half-made request behind.
    SecureBuffer value;
    if (creating) {
        auto read = readValue(parsed.file, mountfs::kDefaultMaxPayload);
        if (!read) return failLine(read.error().message);
        value = std::move(*read);
    }
    auto connection = PipeConnection::connect(*path, Millis{10000});
    if (!connection) return failLine(connection.error().message);

    if (creating) {
        auto reply = createSecret(*connection, name, value, rotating);
        value.reset();
        if (!reply) return failLine(reply.error().message);
        if (rotating)
            std::printf("%s version %llu: %llu running task(s) updated\n", name.c_str(),
                        static_cast<unsigned long long>(uintField(*reply, "version")),
                        static_cast<unsigned long long>(uintField(*reply, "updated")));
        else
            std::printf("%s\n", stringField(*reply, "id").c_str());
        return 0;
    }
    Result<void> done;
    switch (parsed.command) {
    case CtlArgs::Command::rm:
        if (auto reply = call(*connection, SecretNameRequest{op::secretRm, name}.toJson()); !reply)
            done = propagate(reply);
        break;
    case CtlArgs::Command::status:
        if (auto reply = call(*connection, {{"op", op::status}}); !reply)
            done = propagate(reply);
        else
            std::printf("%s\n", reply->dump(2).c_str());
        break;
    case CtlArgs::Command::taskLs:
        if (auto list = collectTasks([&](const json& request) { return call(*connection, request); }); !list) {
            done = propagate(list);
        } else if (parsed.format == "json") {
            std::printf("%s\n", encodeMessage(list->toJson()["tasks"]).c_str());
        } else {
            std::printf("%-40s %s\n", "TASK", "SECRETS");
            for (const auto& t : list->tasks) {
                std::string names;
                for (const auto& s : t.secrets) names += (names.empty() ? "" : ",") + s;
                std::printf("%-40s %s\n", t.id.c_str(), names.c_str());
            }
        }
        break;
    default: {
        const bool inspect = parsed.command == CtlArgs::Command::inspect;
        auto list = replyAs<SecretListReply>(
            call(*connection, SecretNameRequest{inspect ? op::secretInspect : op::secretLs, name}.toJson()));
        if (!list) {
            done = propagate(list);
        } else if (inspect) {
            if (list->secrets.empty()) return failLine("malformed reply from the agent");
            std::printf("%s\n", list->secrets[0].toJson().dump(2).c_str());
        } else if (parsed.format == "json") {
            std::printf("%s\n", encodeMessage(list->toJson()["secrets"]).c_str());
        } else {
            std::printf("%-32s %-8s %s\n", "NAME", "SIZE", "TASKS");
            for (const auto& s : list->secrets)
                std::printf("%-32s %-8llu %zu\n", s.name.c_str(), static_cast<unsigned long long>(s.size),
                            s.tasks.size());
        }
    }
    }
    if (!done) return failLine(done.error().message);
    return 0;
}
