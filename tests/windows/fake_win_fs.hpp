// An in-memory WinFs for the view's tests: it has the symbolic links,
// junctions and ACLs that wine 8 lacks, simulates readers that hold a file
// open (with or without FILE_SHARE_DELETE), fails chosen calls on demand,
// and records every call that would have gone through a reparse point.
// Paths compare case-insensitively (ASCII), as NTFS does.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/windows/win_fs.hpp"

namespace secretshim::testing {

class FakeWinFs : public platform::WinFs {
public:
    enum class Kind { directory, file, fileLink, directoryLink };
    struct Content {
        std::vector<unsigned char> bytes;
        int readers = 0;             // open handles reading the data
        int readersBlockingDelete = 0;  // of which without FILE_SHARE_DELETE
        int wipes = 0;
    };

    // A handle that reads a file, as a process in the container would.
    class Reader {
    public:
        Reader(std::shared_ptr<Content> content, bool shareDelete);
        Reader(Reader&&) = delete;
        ~Reader();
        std::vector<unsigned char> read() const { return content_->bytes; }

    private:
        std::shared_ptr<Content> content_;
        bool shareDelete_;
    };

    // Setup, as an image would have it. Parents must exist.
    void addDirectory(const std::wstring& path);
    void addFile(const std::wstring& path, std::string_view data);
    void addFileLink(const std::wstring& path, const std::wstring& text);
    void addDirectoryLink(const std::wstring& path, const std::wstring& text);  // a junction

    // Inspection.
    std::optional<Kind> kind(const std::wstring& path) const;
    bool exists(const std::wstring& path) const { return kind(path).has_value(); }
    std::shared_ptr<Content> content(const std::wstring& path) const;  // files only
    std::string sddl(const std::wstring& path) const;                   // "" when inherited
    std::wstring linkText(const std::wstring& path) const;
    std::vector<std::wstring> children(const std::wstring& path) const;  // names, sorted
    std::size_t size() const { return entries_.size(); }
    // Calls that would have followed a reparse point above their path.
    const std::vector<std::string>& violations() const { return violations_; }
    const std::vector<std::string>& calls() const { return calls_; }
    std::unique_ptr<Reader> openReader(const std::wstring& path, bool shareDelete);

    // Makes the `skip`+1-th next call of `op` (e.g. "createSymlink") fail
    // with the Win32 error `code`.
    void failNext(const std::string& op, unsigned long code, int skip = 0);

    Result<platform::Node> openNode(const std::wstring& path, bool pin) override;
    Result<void> createDirectory(const std::wstring& path, const platform::SecurityDescriptor* sd) override;
    Result<void> protectDirectory(const std::wstring& path, const platform::SecurityDescriptor& sd) override;
    Result<std::vector<platform::DirEntry>> listDirectory(const std::wstring& path) override;
    Result<void> createFile(const std::wstring& path, mountfs::Bytes data,
                            const platform::SecurityDescriptor* sd) override;
    Result<void> createHardLink(const std::wstring& link, const std::wstring& existing) override;
    Result<void> replaceFile(const std::wstring& from, const std::wstring& to) override;
    Result<bool> wipeFile(const std::wstring& path, bool onlyIfUnused) override;
    Result<void> deleteFile(const std::wstring& path) override;
    Result<void> removeDirectory(const std::wstring& path) override;
    Result<void> createSymlink(const std::wstring& link, const std::wstring& text) override;

private:
    struct Entry {
        Kind kind = Kind::directory;
        std::wstring name;  // as created
        std::shared_ptr<Content> content;
        std::wstring linkText;
        std::string sddl;
    };
    struct Failure {
        unsigned long code;
        int skip;
    };
    const Entry* find(const std::wstring& path) const;
    // Records the call; returns an error if it was told to fail, or if the
    // path lies below a link (then also a violation), or the parent is
    // missing when needParent.
    Result<void> enter(const std::string& op, const std::wstring& path, bool needParent);
    void add(const std::wstring& path, Entry entry);

    std::map<std::wstring, Entry> entries_;  // by folded path
    std::map<std::string, Failure> failures_;
    std::vector<std::string> violations_;
    std::vector<std::string> calls_;
};

}  // namespace secretshim::testing
