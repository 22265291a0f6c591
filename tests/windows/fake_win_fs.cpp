#include "tests/windows/fake_win_fs.hpp"

#include <windows.h>

#include <algorithm>

#include "platform/windows/utf16.hpp"
#include "platform/windows/win_error.hpp"

namespace secretshim::testing {
namespace {

using platform::failWin32;

std::wstring fold(std::wstring path) {
    while (path.size() > 1 && path.back() == L'\\') path.pop_back();
    for (wchar_t& c : path)
        if (c >= L'A' && c <= L'Z') c = static_cast<wchar_t>(c - L'A' + L'a');
    return path;
}

std::wstring parentOf(const std::wstring& key) {
    const std::size_t slash = key.rfind(L'\\');
    return slash == std::wstring::npos ? std::wstring() : key.substr(0, slash);
}

std::wstring nameOf(const std::wstring& path) {
    std::wstring p = path;
    while (p.size() > 1 && p.back() == L'\\') p.pop_back();
    const std::size_t slash = p.rfind(L'\\');
    return slash == std::wstring::npos ? p : p.substr(slash + 1);
}

bool isLink(FakeWinFs::Kind k) {
    return k == FakeWinFs::Kind::fileLink || k == FakeWinFs::Kind::directoryLink;
}

}  // namespace

FakeWinFs::Reader::Reader(std::shared_ptr<Content> content, bool shareDelete)
    : content_(std::move(content)), shareDelete_(shareDelete) {
    ++content_->readers;
    if (!shareDelete_) ++content_->readersBlockingDelete;
}

FakeWinFs::Reader::~Reader() {
    --content_->readers;
    if (!shareDelete_) --content_->readersBlockingDelete;
}

const FakeWinFs::Entry* FakeWinFs::find(const std::wstring& path) const {
    const auto it = entries_.find(fold(path));
    return it == entries_.end() ? nullptr : &it->second;
}

void FakeWinFs::add(const std::wstring& path, Entry entry) {
    entry.name = nameOf(path);
    entries_[fold(path)] = std::move(entry);
}

void FakeWinFs::addDirectory(const std::wstring& path) { add(path, Entry{Kind::directory, {}, {}, {}, {}}); }

void FakeWinFs::addFile(const std::wstring& path, std::string_view data) {
    auto content = std::make_shared<Content>();
    content->bytes.assign(data.begin(), data.end());
    add(path, Entry{Kind::file, {}, content, {}, {}});
}

void FakeWinFs::addFileLink(const std::wstring& path, const std::wstring& text) {
    add(path, Entry{Kind::fileLink, {}, {}, text, {}});
}

void FakeWinFs::addDirectoryLink(const std::wstring& path, const std::wstring& text) {
    add(path, Entry{Kind::directoryLink, {}, {}, text, {}});
}

std::optional<FakeWinFs::Kind> FakeWinFs::kind(const std::wstring& path) const {
    const Entry* e = find(path);
    if (!e) return std::nullopt;
    return e->kind;
}

std::shared_ptr<FakeWinFs::Content> FakeWinFs::content(const std::wstring& path) const {
    const Entry* e = find(path);
    return e ? e->content : nullptr;
}

std::string FakeWinFs::sddl(const std::wstring& path) const {
    const Entry* e = find(path);
    return e ? e->sddl : std::string("(missing)");
}

std::wstring FakeWinFs::linkText(const std::wstring& path) const {
    const Entry* e = find(path);
    return e ? e->linkText : std::wstring();
}

std::vector<std::wstring> FakeWinFs::children(const std::wstring& path) const {
    const std::wstring key = fold(path);
    std::vector<std::wstring> names;
    for (const auto& [k, e] : entries_)
        if (parentOf(k) == key) names.push_back(e.name);
    std::sort(names.begin(), names.end());
    return names;
}

std::unique_ptr<FakeWinFs::Reader> FakeWinFs::openReader(const std::wstring& path, bool shareDelete) {
    auto c = content(path);
    return c ? std::make_unique<Reader>(c, shareDelete) : nullptr;
}

void FakeWinFs::failNext(const std::string& op, unsigned long code, int skip) { failures_[op] = {code, skip}; }

Result<void> FakeWinFs::enter(const std::string& op, const std::wstring& path, bool needParent) {
    calls_.push_back(op + " " + platform::toUtf8(path));
    if (auto it = failures_.find(op); it != failures_.end()) {
        if (it->second.skip-- == 0) {
            const unsigned long code = it->second.code;
            failures_.erase(it);
            return failWin32("fake " + op + " \"" + platform::toUtf8(path) + "\"", code);
        }
    }
    const std::wstring key = fold(path);
    for (std::wstring up = parentOf(key); !up.empty(); up = parentOf(up)) {
        const auto it = entries_.find(up);
        if (it != entries_.end() && isLink(it->second.kind)) {
            violations_.push_back(op + " went through the link " + platform::toUtf8(up));
            return failWin32("fake " + op + " through a link", ERROR_PATH_NOT_FOUND);
        }
    }
    if (needParent) {
        const auto it = entries_.find(parentOf(key));
        if (it == entries_.end() || it->second.kind != Kind::directory)
            return failWin32("fake " + op + " \"" + platform::toUtf8(path) + "\"", ERROR_PATH_NOT_FOUND);
    }
    return {};
}

Result<platform::Node> FakeWinFs::openNode(const std::wstring& path, bool) {
    if (auto ok = enter("openNode", path, false); !ok) {
        if (ok.error().code == ERROR_PATH_NOT_FOUND) return platform::Node{};
        return propagate(ok);
    }
    platform::Node node;
    if (const Entry* e = find(path)) {
        node.exists = true;
        node.directory = e->kind == Kind::directory || e->kind == Kind::directoryLink;
        node.reparsePoint = isLink(e->kind);
    }
    return node;
}

Result<void> FakeWinFs::createDirectory(const std::wstring& path, const platform::SecurityDescriptor* sd) {
    if (auto ok = enter("createDirectory", path, true); !ok) return ok;
    if (find(path)) return failWin32("fake createDirectory", ERROR_ALREADY_EXISTS);
    Entry entry{Kind::directory, {}, {}, {}, {}};
    if (sd) {
        auto text = sd->sddl();
        if (!text) return propagate(text);
        entry.sddl = *text;
    }
    add(path, std::move(entry));
    return {};
}

Result<void> FakeWinFs::protectDirectory(const std::wstring& path, const platform::SecurityDescriptor& sd) {
    if (auto ok = enter("protectDirectory", path, false); !ok) return ok;
    auto it = entries_.find(fold(path));
    if (it == entries_.end() || it->second.kind != Kind::directory)
        return failWin32("fake protectDirectory", ERROR_FILE_NOT_FOUND);
    auto text = sd.sddl();
    if (!text) return propagate(text);
    it->second.sddl = *text;
    return {};
}

Result<std::vector<platform::DirEntry>> FakeWinFs::listDirectory(const std::wstring& path) {
    if (auto ok = enter("listDirectory", path, false); !ok) return propagate(ok);
    const Entry* dir = find(path);
    if (!dir || dir->kind != Kind::directory) return failWin32("fake listDirectory", ERROR_PATH_NOT_FOUND);
    std::vector<platform::DirEntry> out;
    const std::wstring key = fold(path);
    for (const auto& [k, e] : entries_)
        if (parentOf(k) == key)
            out.push_back({e.name, e.kind == Kind::directory || e.kind == Kind::directoryLink, isLink(e.kind)});
    return out;
}

Result<void> FakeWinFs::createFile(const std::wstring& path, mountfs::Bytes data,
                                   const platform::SecurityDescriptor* sd) {
    if (auto ok = enter("createFile", path, true); !ok) return ok;
    if (find(path)) return failWin32("fake createFile", ERROR_FILE_EXISTS);
    Entry entry{Kind::file, {}, std::make_shared<Content>(), {}, {}};
    entry.content->bytes.assign(data.begin(), data.end());
    if (sd) {
        auto text = sd->sddl();
        if (!text) return propagate(text);
        entry.sddl = *text;
    }
    add(path, std::move(entry));
    return {};
}

Result<void> FakeWinFs::createHardLink(const std::wstring& link, const std::wstring& existing) {
    if (auto ok = enter("createHardLink", link, true); !ok) return ok;
    const Entry* from = find(existing);
    if (!from || from->kind != Kind::file) return failWin32("fake createHardLink", ERROR_FILE_NOT_FOUND);
    if (find(link)) return failWin32("fake createHardLink", ERROR_ALREADY_EXISTS);
    add(link, Entry{Kind::file, {}, from->content, {}, from->sddl});
    return {};
}

Result<void> FakeWinFs::replaceFile(const std::wstring& from, const std::wstring& to) {
    if (auto ok = enter("replaceFile", to, true); !ok) return ok;
    auto source = entries_.find(fold(from));
    if (source == entries_.end() || source->second.kind != Kind::file)
        return failWin32("fake replaceFile", ERROR_FILE_NOT_FOUND);
    if (const Entry* target = find(to)) {
        if (target->kind == Kind::directory || target->kind == Kind::directoryLink)
            return failWin32("fake replaceFile", ERROR_ACCESS_DENIED);
        if (target->content && target->content->readersBlockingDelete > 0)
            return failWin32("fake replaceFile", ERROR_SHARING_VIOLATION);
    }
    Entry moved = std::move(source->second);
    entries_.erase(source);
    add(to, std::move(moved));
    return {};
}

Result<bool> FakeWinFs::wipeFile(const std::wstring& path, bool onlyIfUnused) {
    if (auto ok = enter("wipeFile", path, false); !ok) return propagate(ok);
    const Entry* e = find(path);
    if (!e) return failWin32("fake wipeFile", ERROR_FILE_NOT_FOUND);
    if (e->kind != Kind::file) return fail("fake wipeFile: not a regular file");
    if (onlyIfUnused && e->content->readers > 0) return false;
    std::fill(e->content->bytes.begin(), e->content->bytes.end(), 0);
    ++e->content->wipes;
    return true;
}

Result<void> FakeWinFs::deleteFile(const std::wstring& path) {
    if (auto ok = enter("deleteFile", path, false); !ok) return ok;
    auto it = entries_.find(fold(path));
    if (it == entries_.end()) return failWin32("fake deleteFile", ERROR_FILE_NOT_FOUND);
    if (it->second.kind == Kind::directory || it->second.kind == Kind::directoryLink)
        return failWin32("fake deleteFile", ERROR_ACCESS_DENIED);
    if (it->second.content && it->second.content->readersBlockingDelete > 0)
        return failWin32("fake deleteFile", ERROR_SHARING_VIOLATION);
    entries_.erase(it);
    return {};
}

Result<void> FakeWinFs::removeDirectory(const std::wstring& path) {
    if (auto ok = enter("removeDirectory", path, false); !ok) return ok;
    auto it = entries_.find(fold(path));
    if (it == entries_.end()) return failWin32("fake removeDirectory", ERROR_FILE_NOT_FOUND);
    if (it->second.kind != Kind::directory && it->second.kind != Kind::directoryLink)
        return failWin32("fake removeDirectory", ERROR_DIRECTORY);
    if (it->second.kind == Kind::directory && !children(path).empty())
        return failWin32("fake removeDirectory", ERROR_DIR_NOT_EMPTY);
    entries_.erase(it);
    return {};
}

Result<void> FakeWinFs::createSymlink(const std::wstring& link, const std::wstring& text) {
    if (auto ok = enter("createSymlink", link, true); !ok) return ok;
    if (find(link)) return failWin32("fake createSymlink", ERROR_ALREADY_EXISTS);
    add(link, Entry{Kind::fileLink, {}, {}, text, {}});
    return {};
}

}  // namespace secretshim::testing
