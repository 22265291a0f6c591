#include "plugin/windows/win_store.hpp"

#include <windows.h>
#include <bcrypt.h>

#include <algorithm>
#include <chrono>

#include "mountfs/secret_ref.hpp"
#include "platform/windows/utf16.hpp"
#include "plugin/store/aes_gcm.hpp"
#include "plugin/store/random_hex.hpp"
#include "plugin/windows/state_files.hpp"

namespace secretshim::plugin {
namespace {

constexpr std::wstring_view kSecretsDir = L"\\secrets";
constexpr std::wstring_view kSuffix = L".secret";
constexpr std::wstring_view kKeyFile = L"\\node.key";

Result<void> checkName(std::string_view name) { return mountfs::checkSecretName(name); }

std::int64_t nowUnixSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Result<SecureBuffer> loadOrCreateKey(const std::wstring& path, const platform::SecurityDescriptor& descriptor) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto key = readWholeFile(path, kAesKeySize);
        if (key) {
            if (key->size() != kAesKeySize) return fail("the node key is not 256 bits");
            return key;
        }
        if (key.error().code != ERROR_FILE_NOT_FOUND) return propagate(key, "node key");
        auto fresh = SecureBuffer::allocate(kAesKeySize);
        if (!fresh) return propagate(fresh);
        if (!BCRYPT_SUCCESS(::BCryptGenRandom(nullptr, fresh->data(), static_cast<ULONG>(fresh->size()),
                                              BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return fail("node key: the system random generator failed");
        auto written = writeFileAtomically(path, fresh->span(), descriptor, false);
        if (written) return fresh;
        // Another agent made it in between: read that one.
        if (written.error().code != ERROR_ALREADY_EXISTS) return propagate(written, "node key");
    }
    return fail("node key: created and gone again");
}

}  // namespace

Result<WinLocalStore> WinLocalStore::open(const std::wstring& stateDir, std::size_t maxPayload,
                                          ExistingDirectory existing) {
    auto descriptor = platform::SecurityDescriptor::adminsAndSystemOnly();
    if (!descriptor) return propagate(descriptor);
    if (auto ok = ensurePrivateDirectory(stateDir, *descriptor, existing); !ok)
        return propagate(ok, "state directory");
    if (auto ok = ensurePrivateDirectory(stateDir + std::wstring(kSecretsDir), *descriptor, ExistingDirectory::asItIs);
        !ok)
        return propagate(ok, "secrets directory");
    auto key = loadOrCreateKey(stateDir + std::wstring(kKeyFile), *descriptor);
    if (!key) return propagate(key);
    return WinLocalStore(stateDir, std::move(*key), std::move(*descriptor), maxPayload);
}

std::wstring WinLocalStore::recordPath(std::string_view name) const {
    // Names are validated ASCII: a byte per character.
    return stateDir_ + std::wstring(kSecretsDir) + L"\\" + std::wstring(name.begin(), name.end()) +
           std::wstring(kSuffix);
}

Result<SecretMeta> WinLocalStore::create(std::string_view name, mountfs::Bytes plaintext,
                                         const SecretLabels& labels) {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    if (auto ok = mountfs::checkPayloadSize(name, plaintext.size(), maxPayload_); !ok)
        return propagate(ok);
    if (auto ok = checkLabels(labels); !ok) return propagate(ok, "secret " + quote(name));
    auto id = randomHex(16);
    if (!id) return propagate(id);
    const std::int64_t now = nowUnixSeconds();
    SecretMeta meta{std::string(name), *id, plaintext.size(), now, 1, now, labels};
    auto record = sealRecord(meta, key_.span(), plaintext);
    if (!record) return propagate(record, "secret " + quote(name));
    auto written = writeFileAtomically(recordPath(name), *record, descriptor_, false);
    if (!written) {
        if (written.error().code == ERROR_ALREADY_EXISTS) return fail("secret " + quote(name) + " already exists");
        return propagate(written, "secret " + quote(name));
    }
    return meta;
}

Result<SecretMeta> WinLocalStore::rotate(std::string_view name, mountfs::Bytes plaintext) {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    if (auto ok = mountfs::checkPayloadSize(name, plaintext.size(), maxPayload_); !ok) return propagate(ok);
    auto old = readWholeFile(recordPath(name), kMaxRecordHeader + maxPayload_ + kGcmNonceSize + kGcmTagSize);
    if (!old) {
        if (old.error().code == ERROR_FILE_NOT_FOUND) return fail("no secret " + quote(name));
        return propagate(old, "secret " + quote(name));
    }
    auto header = parseRecordHeader(old->span(), old->size());
    // Authenticated before its metadata is sealed again; the old value is
    // wiped as `plain` goes.
    auto plain = header ? openRecord(old->span(), name, key_.span()) : Result<SecureBuffer>(propagate(header));
    if (!plain) return propagate(plain, "secret " + quote(name));
    SecretMeta meta = std::move(header->meta);
    meta.size = plaintext.size();
    meta.version += 1;
    meta.updated = nowUnixSeconds();
    auto record = sealRecord(meta, key_.span(), plaintext);
    if (!record) return propagate(record, "secret " + quote(name));
    if (auto written = writeFileAtomically(recordPath(name), *record, descriptor_, true); !written)
        return propagate(written, "secret " + quote(name));
    return meta;
}

Result<std::vector<SecretMeta>> WinLocalStore::list() const {
    auto names = listFileNames(stateDir_ + std::wstring(kSecretsDir), kSuffix);
    if (!names) return propagate(names);
    std::vector<SecretMeta> out;
    for (const std::wstring& file : *names) {
        auto record = readWholeFile(stateDir_ + std::wstring(kSecretsDir) + L"\\" + file,
                                    kMaxRecordHeader + maxPayload_ + kGcmNonceSize + kGcmTagSize);
        if (!record) continue;  // vanished or unreadable: listed by nobody
        auto header = parseRecordHeader(record->span(), record->size());
        if (!header) continue;
        out.push_back(header->meta);
    }
    std::sort(out.begin(), out.end(), [](const SecretMeta& a, const SecretMeta& b) { return a.name < b.name; });
    return out;
}

Result<void> WinLocalStore::remove(std::string_view name) {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    auto removed = removeFileIfPresent(recordPath(name));
    if (!removed) return propagate(removed);
    if (!*removed) return fail("no secret " + quote(name));
    return {};
}

Result<SecureBuffer> WinLocalStore::load(std::string_view name) const {
    if (auto ok = checkName(name); !ok) return propagate(ok);
    auto record = readWholeFile(recordPath(name), kMaxRecordHeader + maxPayload_ + kGcmNonceSize + kGcmTagSize);
    if (!record) {
        if (record.error().code == ERROR_FILE_NOT_FOUND) return fail("no secret " + quote(name));
        return propagate(record, "secret " + quote(name));
    }
    auto plain = openRecord(record->span(), name, key_.span());
    if (!plain) return propagate(plain, "secret " + quote(name));
    return plain;
}

}  // namespace secretshim::plugin
