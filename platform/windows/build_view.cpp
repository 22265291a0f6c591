// mountfs::buildView() for Windows: a SymlinkView over the real file system.
#include "mountfs/secrets_view.hpp"
#include "platform/windows/real_win_fs.hpp"
#include "platform/windows/symlink_view.hpp"

namespace secretshim::mountfs {

Result<std::unique_ptr<SecretsView>> buildView(ViewLayout layout, const std::vector<Bytes>& payloads,
                                               const ViewOptions& options) {
    static platform::RealWinFs fs;  // stateless
    auto view = platform::SymlinkView::build(std::move(layout), payloads, options, fs);
    if (!view) return tl::unexpected(view.error());
    return std::unique_ptr<SecretsView>(std::move(*view));
}

}  // namespace secretshim::mountfs
