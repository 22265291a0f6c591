#include "plugin/agent/metrics_textfile.hpp"

#include <fcntl.h>

#include <span>

#include "plugin/agent/log.hpp"
#include "plugin/store/atomic_file.hpp"

namespace secretshim::plugin {

Result<std::unique_ptr<MetricsTextfile>> MetricsTextfile::open(boost::asio::io_context& io, const std::string& path,
                                                               Render render) {
    const auto slash = path.rfind('/');
    const std::string dirPath = slash == 0 ? "/" : path.substr(0, slash);
    platform::UniqueFd dir(::open(dirPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return failErrno("metrics_textfile: opening " + dirPath);
    std::unique_ptr<MetricsTextfile> file(
        new MetricsTextfile(io, std::move(dir), dirPath, path.substr(slash + 1), std::move(render)));
    if (auto ok = file->writeIfChanged(); !ok) return propagate(ok, "metrics_textfile");
    file->schedule();
    return file;
}

MetricsTextfile::MetricsTextfile(boost::asio::io_context& io, platform::UniqueFd dir, std::string dirPath,
                                 std::string name, Render render)
    : timer_(io), dir_(std::move(dir)), dirPath_(std::move(dirPath)), name_(std::move(name)),
      render_(std::move(render)) {}

Result<void> MetricsTextfile::writeIfChanged() {
    std::string page = render_();
    if (page == written_) return {};
    const auto* bytes = reinterpret_cast<const unsigned char*>(page.data());
    // 0644: node_exporter runs as its own user. Metrics are no secret and
    // need not survive a power loss: no fsync.
    auto ok = writeFileAtomic(dir_.get(), dirPath_, name_, std::span(bytes, page.size()), 0644, IfExists::replace,
                              Durability::processCrash);
    if (!ok) return ok;
    written_ = std::move(page);
    return {};
}

void MetricsTextfile::schedule() {
    timer_.expires_after(kInterval);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        auto ok = writeIfChanged();
        const std::string error = ok ? std::string() : ok.error().message;
        if (!error.empty() && error != lastError_) log("metrics_textfile: " + error);
        if (error.empty() && !lastError_.empty()) log("metrics_textfile: written again");
        lastError_ = error;
        schedule();
    });
}

}  // namespace secretshim::plugin
