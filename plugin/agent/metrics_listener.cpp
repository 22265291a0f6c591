#include "plugin/agent/metrics_listener.hpp"

#include <fcntl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>

namespace secretshim::plugin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kReadTimeout = std::chrono::seconds(5);   // a request's head, or the idle time before the next
constexpr auto kWriteTimeout = std::chrono::seconds(5);  // the page, to a slow reader
constexpr std::uint32_t kHeaderLimit = 8192;
// After a failed accept (EMFILE: the agent is out of fds) the listening
// socket stays readable: accepting again at once would spin the io thread.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// The agent forks (re-adoption's helper): no socket of ours goes with it.
void closeOnExec(int fd) { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

}  // namespace

struct MetricsListenerState {
    MetricsListenerState(asio::io_context& io, MetricsListener::Render r)
        : acceptor(io), pause(io), render(std::move(r)) {}
    tcp::acceptor acceptor;
    asio::steady_timer pause;
    MetricsListener::Render render;
    std::size_t open = 0;  // connections being served
    bool stopped = false;
};

namespace {

// One scraper's connection, as in Beast's examples: a read with a timeout,
// the answer, again while the client keeps it alive.
class Scrape : public std::enable_shared_from_this<Scrape> {
public:
    Scrape(tcp::socket socket, std::shared_ptr<MetricsListenerState> state)
        : stream_(std::move(socket)), state_(std::move(state)) {
        ++state_->open;
    }
    ~Scrape() { --state_->open; }

    void run() { doRead(); }

private:
    void doRead() {
        parser_.emplace();
        parser_->header_limit(kHeaderLimit);
        stream_.expires_after(kReadTimeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
    }

    void onRead(beast::error_code ec) {
        if (ec) return close();  // closed, timed out, malformed or too large
        const auto& request = parser_->get();
        response_ = {};
        response_.version(request.version());
        response_.keep_alive(request.keep_alive());
        response_.set(http::field::server, "secretshimd");
        const beast::string_view target = request.target();
        const beast::string_view path = target.substr(0, target.find('?'));
        if (path != "/metrics") {
            answer(http::status::not_found, "not found: the agent serves GET /metrics only\n");
        } else if (request.method() != http::verb::get) {
            response_.set(http::field::allow, "GET");
            answer(http::status::method_not_allowed, "method not allowed: GET /metrics only\n");
        } else {
            response_.set(http::field::content_type, kContentType);
            answer(http::status::ok, state_->render());
        }
        stream_.expires_after(kWriteTimeout);
        http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->onWrite(ec);
        });
    }

    void answer(http::status status, std::string body) {
        response_.result(status);
        if (status != http::status::ok) response_.set(http::field::content_type, "text/plain; charset=utf-8");
        response_.body() = std::move(body);
        response_.prepare_payload();
    }

    void onWrite(beast::error_code ec) {
        if (ec || !response_.keep_alive() || state_->stopped) return close();
        doRead();
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream_.close();
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_{kHeaderLimit};
    std::optional<http::request_parser<http::empty_body>> parser_;
    http::response<http::string_body> response_;
    std::shared_ptr<MetricsListenerState> state_;
};

void acceptNext(const std::shared_ptr<MetricsListenerState>& state) {
    state->acceptor.async_accept([state](beast::error_code ec, tcp::socket socket) {
        if (state->stopped) return;
        if (ec) {
            state->pause.expires_after(kAcceptPause);
            state->pause.async_wait([state](beast::error_code e) {
                if (!e && !state->stopped) acceptNext(state);
            });
            return;
        }
        closeOnExec(socket.native_handle());
        // Over the cap the connection is closed unanswered: a scraper
        // retries at its next interval.
        if (state->open < MetricsListener::kMaxScrapers) std::make_shared<Scrape>(std::move(socket), state)->run();
        acceptNext(state);
    });
}

}  // namespace

Result<std::unique_ptr<MetricsListener>> MetricsListener::open(asio::io_context& io, const ListenAddress& address,
                                                               Render render) {
    auto state = std::make_shared<MetricsListenerState>(io, std::move(render));
    beast::error_code ec;
    const auto ip = asio::ip::make_address(address.host, ec);
    if (ec) return fail("metrics_listen " + address.text() + ": " + ec.message());
    const tcp::endpoint endpoint(ip, address.port);
    const auto failed = [&](const char* what) {
        return fail("metrics_listen " + address.text() + ": " + what + ": " + ec.message());
    };
    if (state->acceptor.open(endpoint.protocol(), ec); ec) return failed("socket");
    closeOnExec(state->acceptor.native_handle());
    if (state->acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) return failed("SO_REUSEADDR");
    if (address.ipv6 && (state->acceptor.set_option(asio::ip::v6_only(true), ec), ec)) return failed("IPV6_V6ONLY");
    if (state->acceptor.bind(endpoint, ec); ec) return failed("bind");
    if (state->acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return failed("listen");
    acceptNext(state);
    return std::unique_ptr<MetricsListener>(new MetricsListener(std::move(state)));
}

MetricsListener::MetricsListener(std::shared_ptr<MetricsListenerState> state) : state_(std::move(state)) {}

MetricsListener::~MetricsListener() { stop(); }

void MetricsListener::stop() {
    state_->stopped = true;
    beast::error_code ignored;
    state_->acceptor.close(ignored);
    state_->pause.cancel();
}

}  // namespace secretshim::plugin
