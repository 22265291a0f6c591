// The agent's metrics as a file for node_exporter's textfile collector
// (metrics_textfile): the same page as metrics_listen's, written atomically
// (a temporary file in the same directory, then rename, mode 0644) at start
// and then every kInterval when the page changed. Nothing is written while
// nothing changes.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::plugin {

class MetricsTextfile {
public:
    using Render = std::function<std::string()>;
    static constexpr auto kInterval = std::chrono::seconds(5);
    // Opens the file's directory and writes the page a first time: a
    // directory that is missing or not writable stops the agent at start.
    static Result<std::unique_ptr<MetricsTextfile>> open(boost::asio::io_context& io, const std::string& path,
                                                         Render render);

private:
    MetricsTextfile(boost::asio::io_context& io, platform::UniqueFd dir, std::string dirPath, std::string name,
                    Render render);
    Result<void> writeIfChanged();
    void schedule();

    boost::asio::steady_timer timer_;
    platform::UniqueFd dir_;
    std::string dirPath_, name_;
    Render render_;
    std::string written_;    // the page as last written
    std::string lastError_;  // logged once until it changes
};

}  // namespace secretshim::plugin
