// The agent's metrics over HTTP (metrics_listen): GET /metrics answers the
// page in Prometheus' text format, anything else 404 (405 for another
// method on /metrics). Served with Boost.Beast on the agent's own
// io_context, so the page is read on the thread that changes what it
// shows; a scrape costs that thread only the page's rendering. Bounded: at
// most kMaxScrapers connections at once (more are closed at once), a
// request's head within 8 KiB and 5 seconds, an idle kept-alive connection
// closed after 5 seconds.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "mountfs/base/error.hpp"
#include "plugin/config/agent_config.hpp"

namespace secretshim::plugin {

struct MetricsListenerState;

class MetricsListener {
public:
    using Render = std::function<std::string()>;
    static constexpr std::size_t kMaxScrapers = 8;
    // Binds `address` and starts accepting; `render` makes the page.
    static Result<std::unique_ptr<MetricsListener>> open(boost::asio::io_context& io, const ListenAddress& address,
                                                         Render render);
    ~MetricsListener();
    void stop();  // no more connections accepted

private:
    explicit MetricsListener(std::shared_ptr<MetricsListenerState> state);
    std::shared_ptr<MetricsListenerState> state_;
};

}  // namespace secretshim::plugin
