#include "plugin/store/secret_record.hpp"

#include <algorithm>
#include <cerrno>

#include <nlohmann/json.hpp>

#include "mountfs/secret_ref.hpp"
#include "plugin/store/aes_gcm.hpp"

namespace secretshim::plugin {
namespace {

using nlohmann::json;

constexpr std::string_view kMagicFamily = "SSHS";
constexpr std::size_t kIdLength = 32;

tl::unexpected<Error> corrupt(std::string why) { return failWith(EBADMSG, std::move(why)); }

std::span<const unsigned char> asBytes(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

std::string_view asText(std::span<const unsigned char> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

bool isLowerHex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string encodeHeader(const SecretMeta& meta) {
    json line = {{"name", meta.name},       {"id", meta.id},           {"size", meta.size},
                 {"created", meta.created}, {"updated", meta.updated}, {"version", meta.version}};
    // Only when there are some: a record without labels stays readable by
    // an agent older than labels.
    if (!meta.labels.empty()) line["labels"] = meta.labels;
    // `replace`, not the throwing default: the library raises no exceptions
    // (names are validated ASCII, so nothing is ever replaced).
    return std::string(kRecordMagic) + line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::vector<unsigned char> associatedData(std::span<const unsigned char> header, std::string_view name) {
    std::vector<unsigned char> aad(header.begin(), header.end());
    aad.insert(aad.end(), name.begin(), name.end());
    return aad;
}

Result<SecretMeta> parseMeta(std::string_view line) {
    const json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return corrupt("corrupt record header (not a JSON object)");
    const auto field = [&](const char* key) -> const json* {
        const auto it = j.find(key);
        return it == j.end() ? nullptr : &*it;
    };
    const json* name = field("name");
    const json* id = field("id");
    const json* size = field("size");
    const json* created = field("created");
    if (!name || !name->is_string() || !id || !id->is_string() || !size || !size->is_number_unsigned() ||
        !created || !created->is_number_integer())
        return corrupt("corrupt record header (missing or mistyped field)");

    SecretMeta meta;
    meta.name = name->get<std::string>();
    meta.id = id->get<std::string>();
    meta.size = size->get<std::uint64_t>();
    meta.created = created->get<std::int64_t>();
    // Written since rotation and labels exist; a record older than them has
    // none (version 1, updated when created, no labels).
    meta.updated = meta.created;
    if (const json* updated = field("updated")) {
        if (!updated->is_number_integer()) return corrupt("corrupt record header (mistyped field)");
        meta.updated = updated->get<std::int64_t>();
    }
    if (const json* version = field("version")) {
        if (!version->is_number_unsigned() || version->get<std::uint64_t>() == 0)
            return corrupt("corrupt record header (mistyped field)");
        meta.version = version->get<std::uint64_t>();
    }
    if (const json* labels = field("labels")) {
        if (!labels->is_object()) return corrupt("corrupt record header (mistyped field)");
        for (const auto& [key, value] : labels->items()) {
            if (!value.is_string()) return corrupt("corrupt record header (mistyped field)");
            meta.labels.emplace(key, value.get<std::string>());
        }
        if (!checkLabels(meta.labels)) return corrupt("corrupt record header (invalid label)");
    }
    if (!mountfs::isValidSecretName(meta.name) || meta.id.size() != kIdLength || !isLowerHex(meta.id) ||
        meta.size == 0)
        return corrupt("corrupt record header (invalid field)");
    return meta;
}

bool isKeyChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '/';
}

}  // namespace

Result<void> checkLabels(const SecretLabels& labels) {
    if (labels.size() > kMaxLabels)
        return fail(std::to_string(labels.size()) + " labels: at most " + std::to_string(kMaxLabels));
    std::size_t bytes = 0;
    for (const auto& [key, value] : labels) {
        if (key.empty()) return fail("a label with an empty key");
        if (key.size() > kMaxLabelKey || !std::all_of(key.begin(), key.end(), isKeyChar))
            return fail("label key " + quote(key.substr(0, kMaxLabelKey)) + ": expected 1 to " +
                        std::to_string(kMaxLabelKey) + " of A-Z a-z 0-9 . _ - /");
        if (value.size() > kMaxLabelValue)
            return fail("label " + quote(key) + ": the value is longer than " + std::to_string(kMaxLabelValue) +
                        " characters");
        if (!std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; }))
            return fail("label " + quote(key) + ": the value holds a character that is not printable ASCII");
        bytes += key.size() + value.size();
    }
    if (bytes > kMaxLabelBytes)
        return fail("labels of " + std::to_string(bytes) + " bytes together: at most " +
                    std::to_string(kMaxLabelBytes));
    return {};
}

Result<std::pair<std::string, std::string>> parseLabel(std::string_view text) {
    const auto eq = text.find('=');
    std::pair<std::string, std::string> label{std::string(text.substr(0, eq)),
                                              eq == std::string_view::npos ? "" : std::string(text.substr(eq + 1))};
    if (auto ok = checkLabels({{label.first, label.second}}); !ok) return propagate(ok);
    return label;
}

Result<std::vector<unsigned char>> sealRecord(const SecretMeta& meta, std::span<const unsigned char> key,
                                              std::span<const unsigned char> plaintext) {
    if (plaintext.size() != meta.size) return fail("sealing a record: the size does not match its metadata");
    if (auto ok = checkLabels(meta.labels); !ok) return propagate(ok);
    const std::string header = encodeHeader(meta);
    if (header.size() > kMaxRecordHeader) return fail("sealing a record: its metadata is too long");
    auto sealed = gcmSeal(key, plaintext, associatedData(asBytes(header), meta.name));
    if (!sealed) return propagate(sealed);

    std::vector<unsigned char> record;
    record.reserve(header.size() + kGcmNonceSize + sealed->ciphertext.size() + kGcmTagSize);
    record.insert(record.end(), header.begin(), header.end());
    record.insert(record.end(), sealed->nonce.begin(), sealed->nonce.end());
    record.insert(record.end(), sealed->ciphertext.begin(), sealed->ciphertext.end());
    record.insert(record.end(), sealed->tag.begin(), sealed->tag.end());
    return record;
}

Result<RecordHeader> parseRecordHeader(std::span<const unsigned char> prefix, std::uint64_t fileSize) {
    const std::string_view text = asText(prefix.first(std::min(prefix.size(), kMaxRecordHeader)));
    if (!text.starts_with(kRecordMagic)) {
        if (text.starts_with(kMagicFamily)) return corrupt("unsupported record format version");
        return corrupt("not a secretshim record (bad magic)");
    }
    const std::size_t end = text.find('\n', kRecordMagic.size());
    if (end == std::string_view::npos) return corrupt("corrupt record header (no end of line)");
    auto meta = parseMeta(text.substr(kRecordMagic.size(), end - kRecordMagic.size()));
    if (!meta) return propagate(meta);

    RecordHeader header{std::move(*meta), end + 1};
    const std::uint64_t overhead = header.length + kGcmNonceSize + kGcmTagSize;
    if (fileSize < overhead || fileSize - overhead != header.meta.size)
        return corrupt("record size does not match its header");
    return header;
}

RecordParts recordParts(std::span<const unsigned char> record, const RecordHeader& header) {
    RecordParts parts;
    const auto rest = record.subspan(header.length);
    const std::size_t size = header.meta.size;
    std::copy_n(rest.begin(), kGcmNonceSize, parts.nonce.begin());
    parts.ciphertext = rest.subspan(kGcmNonceSize, size);
    std::copy_n(rest.begin() + static_cast<std::ptrdiff_t>(kGcmNonceSize + size), kGcmTagSize, parts.tag.begin());
    parts.aad = associatedData(record.first(header.length), header.meta.name);
    return parts;
}

Result<SecureBuffer> openRecord(std::span<const unsigned char> record, std::string_view name,
                                std::span<const unsigned char> key) {
    const auto tampered = [] { return corrupt("cannot decrypt (corrupt or tampered)"); };
    auto header = parseRecordHeader(record, record.size());
    // The name check is also enforced by the tag; checking first is cheaper.
    if (!header || header->meta.name != name || header->meta.size == 0) return tampered();
    auto plain = SecureBuffer::allocate(header->meta.size);
    if (!plain) return propagate(plain);
    const RecordParts parts = recordParts(record, *header);
    auto ok = gcmOpenInto(key, parts.nonce, parts.ciphertext, parts.tag, parts.aad, plain->span());
    if (!ok) return ok.error().code == EBADMSG ? tampered() : propagate(ok);
    return plain;
}

}  // namespace secretshim::plugin
