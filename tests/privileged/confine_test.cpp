// The hook's confinement: after confineForAttach() a process keeps only the
// capabilities and system calls attaching needs.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>

#include "platform/linux/confine.hpp"
#include "tests/support/container_fixture.hpp"

using namespace secretshim;

namespace {

std::string statusField(pid_t pid, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key + ":", 0) == 0) {
            std::istringstream s(line.substr(key.size() + 1));
            std::string value;
            s >> value;
            return value;
        }
    return "";
}

// 'y' for a call that worked, the errno letter code otherwise.
char outcome(long rc) { return rc >= 0 ? 'y' : (errno == EPERM ? 'p' : 'e'); }

}  // namespace

TEST_CASE("a confined process keeps what attaching needs and nothing else") {
    test::TempDir dir;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(sv[0]);
        char report[8] = "-------";
        if (!platform::confineForAttach()) ::_exit(3);
        const std::string sub = dir.path() + "/made";
        report[0] = outcome(::mkdirat(AT_FDCWD, sub.c_str(), 0755));                 // allowed
        report[1] = outcome(::openat(AT_FDCWD, dir.path().c_str(), O_PATH));         // allowed
        char* const args[] = {const_cast<char*>("/bin/true"), nullptr};
        report[2] = outcome(::execve("/bin/true", args, nullptr));                   // denied
        report[3] = outcome(::socket(AF_INET, SOCK_STREAM, 0));                      // denied
        report[4] = outcome(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));          // denied
        report[5] = outcome(::unlinkat(AT_FDCWD, sub.c_str(), AT_REMOVEDIR));        // denied
        report[6] = outcome(::setns(0, 0));                                          // denied
        // sendmsg/recvmsg, as the hook talks to the agent (send/recv are
        // sendto/recvfrom, which the filter refuses).
        iovec iov{report, sizeof report};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        (void)::sendmsg(sv[1], &msg, 0);
        char go;
        iovec in{&go, 1};
        msg.msg_iov = &in;
        (void)::recvmsg(sv[1], &msg, 0);  // stay alive while the parent looks
        ::_exit(0);
    }
    ::close(sv[1]);
    char report[8] = {};
    REQUIRE(::recv(sv[0], report, sizeof report, 0) == static_cast<ssize_t>(sizeof report));
    CHECK(std::string(report) == "yyppppp");
    CHECK(statusField(pid, "NoNewPrivs") == "1");
    CHECK(statusField(pid, "Seccomp") == "2");
    // CAP_SYS_ADMIN (21), CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2).
    CHECK(statusField(pid, "CapEff") == "0000000000200006");
    CHECK(statusField(pid, "CapPrm") == "0000000000200006");
    CHECK(statusField(pid, "CapBnd") == "0000000000200006");
    CHECK(statusField(pid, "CapInh") == "0000000000000000");
    (void)::send(sv[0], "g", 1, 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    ::close(sv[0]);
}

// The agent under its systemd unit has no CAP_SETPCAP (packaging/systemd):
// its helpers cannot shrink the bounding set, and still confine themselves.
TEST_CASE("a process without CAP_SETPCAP is confined all the same") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2] = {};
        if (::syscall(SYS_capget, &header, data) != 0) ::_exit(2);
        data[CAP_SETPCAP / 32].effective &= ~(1u << (CAP_SETPCAP % 32));
        data[CAP_SETPCAP / 32].permitted &= ~(1u << (CAP_SETPCAP % 32));
        if (::syscall(SYS_capset, &header, data) != 0) ::_exit(2);
        if (!platform::confineForAttach()) ::_exit(3);
        char go;
        iovec in{&go, 1};
        msghdr msg{};
        msg.msg_iov = &in;
        msg.msg_iovlen = 1;
        (void)::recvmsg(sv[1], &msg, 0);  // stay alive while the parent looks
        ::_exit(0);
    }
    // Wait until the child has confined itself (its filter is on).
    for (int i = 0; i < 500 && statusField(pid, "Seccomp") != "2"; ++i) ::usleep(10000);
    CHECK(statusField(pid, "Seccomp") == "2");
    CHECK(statusField(pid, "NoNewPrivs") == "1");
    CHECK(statusField(pid, "CapEff") == "0000000000200006");
    CHECK(statusField(pid, "CapPrm") == "0000000000200006");
    (void)::send(sv[0], "g", 1, 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 3: confinement failed
    ::close(sv[0]);
    ::close(sv[1]);
}
