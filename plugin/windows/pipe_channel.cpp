#include "plugin/windows/pipe_channel.hpp"

#include <windows.h>

#include <vector>

#include "platform/windows/utf16.hpp"
#include "platform/windows/win_error.hpp"
#include "plugin/windows/pipe_protocol.hpp"
#include "plugin/windows/pipe_server_check.hpp"

namespace secretshim::plugin {
namespace {

using platform::failLastError;
using platform::failWin32;
using platform::failWithCode;
using platform::UniqueHandle;

UniqueHandle newEvent() { return UniqueHandle(::CreateEventW(nullptr, TRUE, FALSE, nullptr)); }

// Finishes an overlapped call that `started` (its return value) began.
// A timeout cancels the call and waits for the cancellation, so the
// OVERLAPPED and the buffer are never used after this returns.
Result<DWORD> finishIo(HANDLE pipe, OVERLAPPED& ov, BOOL started, Millis timeout, const std::string& what) {
    if (!started) {
        const DWORD code = ::GetLastError();
        if (code != ERROR_IO_PENDING) return failWin32(what, code);
        if (::WaitForSingleObject(ov.hEvent, static_cast<DWORD>(timeout.count())) != WAIT_OBJECT_0) {
            ::CancelIoEx(pipe, &ov);
            DWORD ignored = 0;
            ::GetOverlappedResult(pipe, &ov, &ignored, TRUE);
            return failWithCode(WAIT_TIMEOUT, what + ": timed out after " + std::to_string(timeout.count()) + " ms");
        }
    }
    DWORD n = 0;
    if (!::GetOverlappedResult(pipe, &ov, &n, FALSE)) {
        const DWORD code = ::GetLastError();
        if (code == ERROR_MORE_DATA) return failWithCode(ERROR_MORE_DATA, what + ": message too large");
        if (code == ERROR_BROKEN_PIPE || code == ERROR_PIPE_NOT_CONNECTED)
            return failWithCode(ERROR_BROKEN_PIPE, what + ": the other end closed the pipe");
        return failWin32(what, code);
    }
    return n;
}

}  // namespace

Result<std::wstring> pipePath(std::string_view name) {
    constexpr std::string_view prefix = "\\\\.\\pipe\\";
    std::string_view bare = name;
    if (name.starts_with(prefix))
        bare.remove_prefix(prefix.size());
    else if (name.starts_with("\\\\") || name.starts_with("//"))
        return fail("pipe " + quote(name) + " is not a local pipe (\\\\.\\pipe\\NAME)");
    if (bare.empty() || bare.size() > 200 || bare.find('\\') != std::string_view::npos)
        return fail("pipe name " + quote(name) + " is not NAME or \\\\.\\pipe\\NAME");
    auto wide = platform::toUtf16(bare);
    if (!wide) return propagate(wide, "pipe name");
    return L"\\\\.\\pipe\\" + *wide;
}

std::string encodeMessage(const nlohmann::json& body) {
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

PipeConnection::PipeConnection(UniqueHandle pipe) : pipe_(std::move(pipe)), event_(newEvent()) {}

Result<PipeConnection> PipeConnection::connect(const std::wstring& path, Millis timeout) {
    const std::string shown = quote(platform::toUtf8(path));
    const ULONGLONG deadline = ::GetTickCount64() + static_cast<ULONGLONG>(timeout.count());
    for (;;) {
        UniqueHandle pipe(::CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                                        FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                                        nullptr));
        if (pipe) {
            DWORD mode = PIPE_READMODE_MESSAGE;
            if (!::SetNamedPipeHandleState(pipe.get(), &mode, nullptr, nullptr))
                return failLastError("setting message mode on " + shown);
            if (auto trusted = checkPipeServer(pipe.get(), shown); !trusted) return propagate(trusted);
            return PipeConnection(std::move(pipe));
        }
        const DWORD code = ::GetLastError();
        const ULONGLONG now = ::GetTickCount64();
        // Missing: the agent is (re)starting. Busy: every instance is taken.
        if ((code != ERROR_FILE_NOT_FOUND && code != ERROR_PIPE_BUSY) || now >= deadline)
            return failWin32("cannot reach the secretshim agent at " + shown, code);
        if (code == ERROR_PIPE_BUSY)
            ::WaitNamedPipeW(path.c_str(), static_cast<DWORD>(std::min<ULONGLONG>(deadline - now, 1000)));
        else
            ::Sleep(50);
    }
}

Result<void> PipeConnection::send(const nlohmann::json& body, Millis timeout) {
    std::string text = encodeMessage(body);
    if (text.size() > kPipeMaxMessage) return fail("message too large");
    OVERLAPPED ov{};
    ov.hEvent = event_.get();
    ::ResetEvent(ov.hEvent);
    const BOOL started = ::WriteFile(pipe_.get(), text.data(), static_cast<DWORD>(text.size()), nullptr, &ov);
    auto n = finishIo(pipe_.get(), ov, started, timeout, "writing to the pipe");
    ::SecureZeroMemory(text.data(), text.size());  // may carry a secret chunk
    if (!n) return propagate(n);
    if (*n != text.size()) return fail("writing to the pipe: short write");
    return {};
}

Result<unsigned long> PipeConnection::readSome(unsigned char* data, unsigned long size, Millis timeout) {
    OVERLAPPED ov{};
    ov.hEvent = event_.get();
    ::ResetEvent(ov.hEvent);
    const BOOL started = ::ReadFile(pipe_.get(), data, size, nullptr, &ov);
    return finishIo(pipe_.get(), ov, started, timeout, "reading from the pipe");
}

Result<nlohmann::json> PipeConnection::receive(Millis timeout) {
    std::vector<unsigned char> buffer(kPipeMaxMessage);
    auto n = readSome(buffer.data(), static_cast<unsigned long>(buffer.size()), timeout);
    if (!n && n.error().code == ERROR_MORE_DATA) {
        // Drain the rest of the oversized message so the next one is read whole.
        for (;;) {
            auto more = readSome(buffer.data(), static_cast<unsigned long>(buffer.size()), timeout);
            if (more || more.error().code != ERROR_MORE_DATA) break;
        }
        ::SecureZeroMemory(buffer.data(), buffer.size());
        return failWithCode(ERROR_MORE_DATA, "message over " + std::to_string(kPipeMaxMessage) + " bytes");
    }
    if (!n) return propagate(n);
    nlohmann::json body = nlohmann::json::parse(buffer.begin(), buffer.begin() + *n, nullptr, false);
    ::SecureZeroMemory(buffer.data(), buffer.size());
    if (body.is_discarded() || !body.is_object())
        return failWithCode(ERROR_INVALID_DATA, "malformed message (not a JSON object)");
    return body;
}

Result<PipeListener> PipeListener::create(const std::wstring& path) {
    // FILE_FLAG_FIRST_PIPE_INSTANCE refuses a name someone already serves;
    // wine 8 does not enforce it, so a client-side probe checks first.
    {
        UniqueHandle probe(::CreateFileW(path.c_str(), GENERIC_READ, 0, nullptr, OPEN_EXISTING,
                                         SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr));
        const DWORD code = probe ? ERROR_SUCCESS : ::GetLastError();
        if (probe || code == ERROR_PIPE_BUSY || code == ERROR_ACCESS_DENIED)
            return failWithCode(ERROR_PIPE_BUSY, "the pipe " + quote(platform::toUtf8(path)) +
                                                     " already exists (another agent is running, or a process took its name)");
    }
    auto descriptor = platform::SecurityDescriptor::adminsAndSystemOnly();
    if (!descriptor) return propagate(descriptor);
    PipeListener listener(path, std::move(*descriptor));
    auto first = listener.newInstance(true);
    if (!first) return propagate(first);
    listener.next_ = std::move(*first);
    return listener;
}

Result<UniqueHandle> PipeListener::newInstance(bool first) {
    SECURITY_ATTRIBUTES attributes{sizeof attributes, descriptor_.get(), FALSE};
    UniqueHandle pipe(::CreateNamedPipeW(
        path_.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_UNLIMITED_INSTANCES, kPipeMaxMessage, kPipeMaxMessage, 0, &attributes));
    if (!pipe) {
        const DWORD code = ::GetLastError();
        const std::string shown = quote(platform::toUtf8(path_));
        if (first && (code == ERROR_ACCESS_DENIED || code == ERROR_PIPE_BUSY))
            return failWin32("the pipe " + shown + " already exists (another agent is running, or a process took its name)",
                             code);
        return failWin32("creating the pipe " + shown, code);
    }
    return pipe;
}

Result<PipeConnection> PipeListener::accept(HANDLE stop) {
    UniqueHandle event = newEvent();
    OVERLAPPED ov{};
    ov.hEvent = event.get();
    if (!::ConnectNamedPipe(next_.get(), &ov)) {
        const DWORD code = ::GetLastError();
        if (code == ERROR_IO_PENDING) {
            const HANDLE events[] = {ov.hEvent, stop};
            DWORD ignored = 0;
            if (::WaitForMultipleObjects(stop ? 2 : 1, events, FALSE, INFINITE) != WAIT_OBJECT_0) {
                // Stopped (or the wait failed): the OVERLAPPED must not be
                // in use when this returns.
                ::CancelIoEx(next_.get(), &ov);
                ::GetOverlappedResult(next_.get(), &ov, &ignored, TRUE);
                return failWithCode(ERROR_OPERATION_ABORTED, "stopped waiting for clients");
            }
            if (!::GetOverlappedResult(next_.get(), &ov, &ignored, FALSE))
                return failLastError("waiting for a client on the pipe");
        } else if (code != ERROR_PIPE_CONNECTED) {
            return failWin32("waiting for a client on the pipe", code);
        }
    }
    auto following = newInstance(false);
    if (!following) return propagate(following);
    PipeConnection connection(std::move(next_));
    next_ = std::move(*following);
    return connection;
}

}  // namespace secretshim::plugin
