// mountfs::buildView() for Windows: a SymlinkView over the real file system.
#include "mountfs/secrets_view.hpp"
#include "platform/windows/real_win_fs.hpp"
#include "platform/windows/symlink_view.hpp"
#include "platform/windows/wiped_bytes.hpp"

#include <cstring>

namespace secretshim::mountfs {

Result<std::unique_ptr<SecretsView>> buildView(ViewLayout layout, const std::vector<Bytes>& payloads,
                                               const ViewOptions& options) {
    static platform::RealWinFs fs;  // stateless
    auto view = platform::SymlinkView::build(std::move(layout), payloads, options, fs);
    if (!view) return tl::unexpected(view.error());
    return std::unique_ptr<SecretsView>(std::move(*view));
}

namespace {

// Copies the pieces of one payload into a buffer of its announced size.
class BufferSink final : public PayloadSink {
public:
    explicit BufferSink(platform::WipedBytes& out, std::size_t size) : out_(out), size_(size) {}
    Result<void> write(Bytes piece) override {
        if (piece.size() > size_ - used_) return fail("internal error: a payload is longer than announced");
        std::memcpy(out_.data() + used_, piece.data(), piece.size());
        used_ += piece.size();
        return {};
    }
    std::size_t used() const { return used_; }

private:
    platform::WipedBytes& out_;
    std::size_t size_;
    std::size_t used_ = 0;
};

}  // namespace

// SymlinkView keeps a wiped copy of each payload until attach() anyway: the
// source fills such copies, which are wiped when this returns.
Result<std::unique_ptr<SecretsView>> buildView(ViewLayout layout, const PayloadSource& payloads,
                                               const ViewOptions& options) {
    std::vector<platform::WipedBytes> copies;
    std::vector<Bytes> spans;
    copies.reserve(payloads.count());
    for (std::size_t i = 0; i < payloads.count(); ++i) {
        const std::string name = i < layout.entries.size() ? layout.entries[i].ref.source : "?";
        if (auto ok = checkPayloadSize(name, payloads.size(i), options.maxPayload); !ok)
            return tl::unexpected(ok.error());
        copies.emplace_back(payloads.size(i));
        BufferSink sink(copies.back(), payloads.size(i));
        if (auto ok = payloads.produce(i, sink); !ok) return tl::unexpected(ok.error());
        if (sink.used() != payloads.size(i)) return fail("internal error: a payload is shorter than announced");
        spans.push_back(copies.back().bytes());
    }
    return buildView(std::move(layout), spans, options);
}

}  // namespace secretshim::mountfs
