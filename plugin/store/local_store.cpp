#include "plugin/store/local_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>

#include <nlohmann/json.hpp>

#include "platform/linux/two_threads.hpp"
#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/atomic_file.hpp"
#include "plugin/store/private_path.hpp"
#include "plugin/store/random_hex.hpp"

namespace secretshim::plugin {
namespace {

constexpr std::size_t kIdBytes = 16;


tl::unexpected<Error> refuse(int code, std::string message) {
    return failWith(code, std::move(message));
}

std::string fileName(std::string_view name) { return std::string(name) + std::string(kSecretSuffix); }
std::string grantsFileName(std::string_view name) { return std::string(name) + std::string(kGrantsSuffix); }
constexpr std::uint64_t kMaxGrantsFile = 1 << 20;

// Also what keeps a name from walking out of secrets/ ("../x", "a/b").
Result<void> checkName(std::string_view name) { return mountfs::checkSecretName(name); }

std::int64_t nowUnixSeconds() {
    const auto since = std::chrono::system_clock::now().time_since_epoch();
    return std::chrono::duration_cast<std::chrono::seconds>(since).count();
}

std::string tamperedLine(std::string_view name) {
    return "secret " + quote(name) + ": cannot decrypt (corrupt or tampered)";
}

struct DirClose {
    void operator()(DIR* dir) const { ::closedir(dir); }
};

}  // namespace

Result<LocalStore> LocalStore::open(const std::string& stateDir, StoreOptions options) {
    auto state = openOrCreateDir(AT_FDCWD, stateDir, "state directory " + stateDir, DirAccess::any);
    if (!state) return propagate(state);
    auto key = NodeKey::loadOrCreateAt(state->get(), stateDir);
    if (!key) return propagate(key);
    std::string dirPath = stateDir + "/" + std::string(kSecretsSubdir);
    auto dir = openOrCreateDir(state->get(), std::string(kSecretsSubdir), "secrets directory " + dirPath,
                               DirAccess::ownerOnly);
    if (!dir) return propagate(dir);
    return LocalStore(std::move(*dir), std::move(dirPath), std::move(*key), options);
}

Result<SecretMeta> LocalStore::create(std::string_view name, mountfs::Bytes plaintext, const SecretLabels& labels) {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    if (auto ok = mountfs::checkPayloadSize(name, plaintext.size(), options_.maxPayload); !ok)
        return propagate(ok);
    if (auto ok = checkLabels(labels); !ok) return propagate(ok, "secret " + quote(name));

    const std::string file = fileName(name);
    const std::string exists = "secret " + quote(name) + " already exists";
    // Checked before encrypting for a quick answer; the no-replace rename
    // below is what settles a race.
    struct stat st {};
    if (::fstatat(dir_.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return refuse(EEXIST, exists);
    if (errno != ENOENT) return failErrno("secret " + quote(name) + ": inspecting " + dirPath_ + "/" + file);

    auto id = randomHex(kIdBytes);
    if (!id) return propagate(id);
    const std::int64_t now = nowUnixSeconds();
    SecretMeta meta{std::string(name), std::move(*id), plaintext.size(), now, 1, now, labels};
    auto record = sealRecord(meta, key_.bytes(), plaintext);
    if (!record) return propagate(record, "secret " + quote(name));
    auto written = writeFileAtomic(dir_.get(), dirPath_, file, *record, 0600, IfExists::fail);
    if (!written) {
        if (written.error().code == EEXIST) return refuse(EEXIST, exists);
        return propagate(written, "secret " + quote(name));
    }
    return meta;
}

Result<SecretMeta> LocalStore::rotate(std::string_view name, mountfs::Bytes plaintext) {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    if (auto ok = mountfs::checkPayloadSize(name, plaintext.size(), options_.maxPayload); !ok)
        return propagate(ok);
    std::vector<unsigned char> old;
    auto header = readRecord(name, old);
    if (!header) return propagate(header);
    // Authenticated before its metadata is sealed again; the old value is
    // wiped as `opened` goes.
    if (auto opened = openRecord(old, name, key_.bytes()); !opened) {
        if (opened.error().code == EBADMSG) return refuse(EBADMSG, tamperedLine(name));
        return propagate(opened);
    }
    SecretMeta meta = std::move(header->meta);
    meta.size = plaintext.size();
    meta.version += 1;
    meta.updated = nowUnixSeconds();
    auto record = sealRecord(meta, key_.bytes(), plaintext);
    if (!record) return propagate(record, "secret " + quote(name));
    auto written = writeFileAtomic(dir_.get(), dirPath_, fileName(name), *record, 0600, IfExists::replace);
    if (!written) return propagate(written, "secret " + quote(name));
    return meta;
}

Result<RecordHeader> LocalStore::readHeader(std::string_view name, int fd, std::uint64_t fileSize) const {
    std::vector<unsigned char> prefix(std::min<std::uint64_t>(fileSize, kMaxRecordHeader));
    const std::string label = "secret file " + dirPath_ + "/" + fileName(name);
    if (auto ok = readExact(fd, prefix, label); !ok) return propagate(ok);
    auto header = parseRecordHeader(prefix, fileSize);
    if (!header) return propagate(header, "secret " + quote(name));
    if (header->meta.name != name)
        return refuse(EBADMSG, "secret " + quote(name) + ": record header names another secret");
    return header;
}

Result<SecretMeta> LocalStore::inspect(std::string_view name) const {
    auto file = openRecordFile(name, "secret file " + dirPath_ + "/" + fileName(name));
    if (!file) return propagate(file);
    auto header = readHeader(name, file->fd.get(), file->size);
    if (!header) return propagate(header);
    return std::move(header->meta);
}

Result<std::vector<SecretMeta>> LocalStore::list() const {
    // A fresh descriptor: fdopendir takes ownership and reads from its offset.
    platform::UniqueFd fd(::openat(dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return failErrno("listing " + dirPath_);
    std::unique_ptr<DIR, DirClose> dir(::fdopendir(fd.get()));
    if (!dir) return failErrno("listing " + dirPath_);
    (void)fd.release();  // closedir closes it now

    std::vector<SecretMeta> secrets;
    errno = 0;
    while (const dirent* entry = ::readdir(dir.get())) {
        const std::string_view file = entry->d_name;
        // Temporary files start with a dot and are never valid names.
        if (!file.ends_with(kSecretSuffix)) continue;
        const std::string_view name = file.substr(0, file.size() - kSecretSuffix.size());
        if (!mountfs::isValidSecretName(name)) continue;
        auto meta = inspect(name);
        if (!meta && meta.error().code == ENOENT) continue;  // removed while we listed
        if (!meta) return propagate(meta);
        secrets.push_back(std::move(*meta));
        errno = 0;
    }
    if (errno != 0) return failErrno("listing " + dirPath_);
    std::sort(secrets.begin(), secrets.end(),
              [](const SecretMeta& a, const SecretMeta& b) { return a.name < b.name; });
    return secrets;
}

Result<void> LocalStore::remove(std::string_view name) {
    if (auto ok = checkName(name); !ok) return ok;
    if (::unlinkat(dir_.get(), grantsFileName(name).c_str(), 0) != 0 && errno != ENOENT)
        return failErrno("removing the grants of secret " + quote(name));
    // The file holds only ciphertext, so unlinking it without overwriting
    // leaves nothing readable without the node key.
    if (::unlinkat(dir_.get(), fileName(name).c_str(), 0) != 0) {
        if (errno == ENOENT) return refuse(ENOENT, "secret " + quote(name) + " does not exist");
        return failErrno("removing secret " + quote(name));
    }
    if (::fsync(dir_.get()) != 0) return failErrno("fsync " + dirPath_);
    return {};
}

Result<std::vector<std::string>> LocalStore::readGrants(std::string_view name, std::string_view secretId) const {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    const std::string label = "grants file " + dirPath_ + "/" + grantsFileName(name);
    auto text = readPrivateText(dir_.get(), grantsFileName(name), label, kMaxGrantsFile);
    if (!text && text.error().code == ENOENT) return std::vector<std::string>{};
    if (!text) return propagate(text);
    const auto doc = nlohmann::json::parse(*text, nullptr, false);
    const auto id = doc.is_object() ? doc.find("secret_id") : doc.end();
    const auto rules = doc.is_object() ? doc.find("rules") : doc.end();
    if (id == doc.end() || !id->is_string() || rules == doc.end() || !rules->is_array())
        return fail(label + " is not a grants file");
    std::vector<std::string> out;
    if (id->get_ref<const std::string&>() != secretId) return out;  // an earlier secret's
    for (const auto& r : *rules) {
        if (!r.is_string()) return fail(label + " is not a grants file");
        out.push_back(r.get<std::string>());
    }
    return out;
}

Result<void> LocalStore::writeGrants(std::string_view name, std::string_view secretId,
                                     const std::vector<std::string>& rules) {
    if (auto ok = checkName(name); !ok) return ok;
    if (rules.empty()) {
        if (::unlinkat(dir_.get(), grantsFileName(name).c_str(), 0) != 0 && errno != ENOENT)
            return failErrno("removing the grants of secret " + quote(name));
        return {};
    }
    const std::string text = nlohmann::json{{"secret_id", secretId}, {"rules", rules}}.dump(1) + "\n";
    auto written = writeFileAtomic(dir_.get(), dirPath_, grantsFileName(name),
                                   {reinterpret_cast<const unsigned char*>(text.data()), text.size()}, 0600,
                                   IfExists::replace);
    if (!written) return propagate(written, "secret " + quote(name) + ": saving its grants");
    return {};
}

Result<OpenedFile> LocalStore::openRecordFile(std::string_view name, const std::string& label) const {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    auto file = openPrivateFile(dir_.get(), fileName(name), label);
    if (!file && file.error().code == ENOENT) return refuse(ENOENT, "secret " + quote(name) + " does not exist");
    return file;
}


Result<RecordHeader> LocalStore::readWhole(std::string_view name, const OpenedFile& file, const std::string& label,
                                           std::span<unsigned char> record) const {
    if (auto ok = readExact(file.fd.get(), record, label); !ok) return propagate(ok);
    auto header =
        parseRecordHeader(record.first(std::min<std::size_t>(record.size(), kMaxRecordHeader)), file.size);
    if (!header || header->meta.name != name) return refuse(EBADMSG, tamperedLine(name));
    if (auto ok = mountfs::checkPayloadSize(name, header->meta.size, options_.maxPayload); !ok)
        return propagate(ok);
    return header;
}

Result<RecordHeader> LocalStore::checkedHeader(std::string_view name, const OpenedFile& file) const {
    auto header = readHeader(name, file.fd.get(), file.size);
    if (!header) {
        if (header.error().code == EBADMSG) return refuse(EBADMSG, tamperedLine(name));
        return propagate(header);
    }
    if (auto ok = mountfs::checkPayloadSize(name, header->meta.size, options_.maxPayload); !ok)
        return propagate(ok);
    return header;
}

Result<RecordHeader> LocalStore::readRecord(std::string_view name, std::vector<unsigned char>& record) const {
    const std::string label = "secret file " + dirPath_ + "/" + fileName(name);
    auto file = openRecordFile(name, label);
    if (!file) return propagate(file);
    // A record that can hold a value within the limit is read in one go and
    // its header parsed from memory (two syscalls fewer per secret: no
    // separate header read, no lseek). A larger file gets its header read
    // first, so an oversized value is refused without reading it.
    const std::uint64_t fits = kMaxRecordHeader + kGcmNonceSize + kGcmTagSize + options_.maxPayload;
    if (file->size <= fits) {
        record.resize(file->size);
        return readWhole(name, *file, label, record);
    }
    auto header = checkedHeader(name, *file);
    if (!header) return header;
    record.resize(file->size);
    if (::lseek(file->fd.get(), 0, SEEK_SET) != 0) return failErrno("reading " + label);
    if (auto ok = readExact(file->fd.get(), record, label); !ok) return propagate(ok);
    return header;
}

Result<SecureBuffer> LocalStore::load(std::string_view name) const {
    std::vector<unsigned char> record;
    auto header = readRecord(name, record);
    if (!header) return propagate(header);
    auto plain = openRecord(record, name, key_.bytes());
    if (!plain) {
        if (plain.error().code == EBADMSG) return refuse(EBADMSG, tamperedLine(name));
        return propagate(plain);
    }
    return plain;
}

// A task of many secrets has its records read on two threads: opening and
// checking a record costs about 10 us here, most of it in the kernel.
Result<SealedSecrets> LocalStore::readMany(std::span<const std::string> names) const {
    // Records held in memory from the first read, up to this many bytes.
    constexpr std::size_t kHoldBudget = std::size_t{1} << 20;
    constexpr std::size_t kTwoThreads = 64;
    SealedSecrets out(*this);
    std::atomic<bool> stop{false};
    if (names.size() < kTwoThreads) {
        if (auto ok = readRecords(names, kHoldBudget, out, stop); !ok) return propagate(ok);
        return out;
    }
    const std::size_t half = names.size() / 2;
    SealedSecrets rest(*this);
    auto ok = platform::onTwoThreads([&] { return readRecords(names.first(half), kHoldBudget / 2, out, stop); },
                                     [&] { return readRecords(names.subspan(half), kHoldBudget / 2, rest, stop); });
    if (!ok) return propagate(ok);
    const std::size_t shift = out.held_.size();
    out.held_.insert(out.held_.end(), rest.held_.begin(), rest.held_.end());
    for (auto& entry : rest.entries_) {
        entry.offset += shift;
        out.entries_.push_back(std::move(entry));
    }
    return out;
}

Result<void> LocalStore::readRecords(std::span<const std::string> names, std::size_t holdBudget,
                                     SealedSecrets& into, std::atomic<bool>& stop) const {
    const std::uint64_t fits = kMaxRecordHeader + kGcmNonceSize + kGcmTagSize + options_.maxPayload;
    into.entries_.reserve(names.size());
    for (const std::string& name : names) {
        if (stop.load(std::memory_order_relaxed)) return {};  // the other half failed
        const std::string label = "secret file " + dirPath_ + "/" + fileName(name);
        auto file = openRecordFile(name, label);
        if (!file) {
            stop = true;
            return propagate(file);
        }
        SealedSecrets::Entry entry{{}, into.held_.size(), 0};
        Result<RecordHeader> header = tl::unexpected(Error{});
        if (file->size <= fits && into.held_.size() + file->size <= holdBudget) {
            into.held_.resize(entry.offset + file->size);
            header = readWhole(name, *file, label, std::span<unsigned char>(into.held_).subspan(entry.offset));
            entry.length = file->size;
        } else {
            header = checkedHeader(name, *file);
        }
        if (!header) {
            stop = true;
            return propagate(header);
        }
        entry.header = std::move(*header);
        into.entries_.push_back(std::move(entry));
    }
    return {};
}

Result<void> SealedSecrets::decryptTo(std::size_t index, const GcmPiece& piece, Workspace& workspace) const {
    // One piece per value up to 64 KiB; larger values go through in 64 KiB
    // pieces. A task of small values locks only as many pages as its largest.
    constexpr std::size_t kPiece = std::size_t{64} << 10;
    const Entry& entry = entries_[index];
    const std::string& name = entry.header.meta.name;
    if (workspace.buffer.empty()) {
        std::size_t largest = 0;
        for (const Entry& e : entries_) largest = std::max<std::size_t>(largest, e.header.meta.size);
        auto buffer = SecureBuffer::allocate(std::min(largest, kPiece));
        if (!buffer) return propagate(buffer);
        workspace.buffer = std::move(*buffer);
    }
    std::span<const unsigned char> record;
    RecordHeader reread;
    const RecordHeader* header = &entry.header;
    if (entry.length != 0) {
        record = std::span<const unsigned char>(held_).subspan(entry.offset, entry.length);
    } else {
        auto again = store_->readRecord(name, workspace.scratch);
        if (!again) return propagate(again);
        if (again->meta.size != entry.header.meta.size)
            return refuse(EAGAIN, "secret " + quote(name) + " was replaced while the task started; try again");
        reread = std::move(*again);
        header = &reread;
        record = workspace.scratch;
    }
    const RecordParts parts = recordParts(record, *header);
    bool handed = true;  // a failure of `piece` is returned as it is
    auto ok = gcmOpenPieces(store_->key_.bytes(), parts.nonce, parts.ciphertext, parts.tag, parts.aad,
                            workspace.buffer.span(), [&](std::span<const unsigned char> plain) {
                                auto done = piece(plain);
                                handed = done.has_value();
                                return done;
                            });
    if (!ok && handed) return refuse(EBADMSG, tamperedLine(name));
    return ok;
}

}  // namespace secretshim::plugin
