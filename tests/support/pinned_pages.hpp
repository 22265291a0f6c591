// The pages that hold a tmpfs file's content, held by a pipe, to see what
// a wipe did to them. splice() from a tmpfs file puts references to its
// page-cache pages into the pipe, not copies (shmem's splice_read). A wipe
// that overwrites the file writes into those very pages; one that only
// truncates or unlinks it takes them out of the file unchanged, and they
// live on in the pipe, holding the secret. Reading through an fd of the
// file cannot tell the two apart once the file is truncated (0 bytes
// either way), nor can a mapping (truncation unmaps it): the pipe can.
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "platform/linux/unique_fd.hpp"

namespace secretshim::test {

class PinnedPages {
public:
    // Pins the whole content of `fd` (a regular file on a tmpfs), and keeps
    // a copy of what the pages hold now (a second reference, taken with
    // tee(), read at once) for then().
    explicit PinnedPages(int fd) {
        const off_t end = ::lseek(fd, 0, SEEK_END);
        REQUIRE(end > 0);
        size_ = static_cast<std::size_t>(end);
        platform::UniqueFd copyRead, copyWrite;
        makePipe(read_, write_);
        makePipe(copyRead, copyWrite);
        for (loff_t at = 0; static_cast<std::size_t>(at) < size_;) {
            const ssize_t n = ::splice(fd, &at, write_.get(), nullptr, size_ - static_cast<std::size_t>(at), 0);
            REQUIRE(n > 0);
        }
        REQUIRE(::tee(read_.get(), copyWrite.get(), size_, 0) == static_cast<ssize_t>(size_));
        copyWrite.reset();
        then_ = drain(copyRead.get());
    }

    // What the pinned pages held when they were pinned.
    const std::string& then() const { return then_; }
    // What they hold now (once: reading empties the pipe).
    std::string now() {
        write_.reset();
        return drain(read_.get());
    }
    // Whether they hold now exactly as many zero bytes as the file had.
    bool zeroedNow() {
        const std::string bytes = now();
        return bytes.size() == size_ && std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == '\0'; });
    }
    std::size_t size() const { return size_; }

private:
    // A pipe that holds the whole file (root may go past pipe-max-size).
    void makePipe(platform::UniqueFd& r, platform::UniqueFd& w) const {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        r.reset(fds[0]);
        w.reset(fds[1]);
        REQUIRE(::fcntl(w.get(), F_SETPIPE_SZ, static_cast<int>(std::max<std::size_t>(size_, 4096))) >= 0);
    }
    std::string drain(int fd) const {
        std::string bytes;
        char buffer[65536];
        for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) != 0;) {
            REQUIRE(n > 0);
            bytes.append(buffer, static_cast<std::size_t>(n));
        }
        return bytes;
    }

    std::size_t size_ = 0;
    platform::UniqueFd read_, write_;
    std::string then_;
};

}  // namespace secretshim::test
