#include "imds_emulator/server.hpp"

#include <tb/log.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <array>
#include <set>

namespace imds_emulator {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr std::uint64_t kBodyLimit = 64 * 1024ULL;

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

struct ConnectionBase {
  virtual ~ConnectionBase() = default;
  /// Cancels reads, writes, hangs and delay_ms waits.
  virtual void close() = 0;
};

template <class Stream>
struct Connection : ConnectionBase {
  /// `tls`: the ssl::context for a TlsStream, nothing for plain TCP.
  template <class... Tls>
  explicit Connection(tcp::socket socket, Tls&... tls)
      : stream(std::move(socket), tls...), timer(stream.get_executor()) {}
  void close() override {
    beast::get_lowest_layer(stream).close();
    timer.cancel();
  }
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }
  Stream stream;
  asio::steady_timer timer;  // delay_ms
};

// Keeps a token request counted in in_flight while it waits, hangs or is written.
class InFlight {
 public:
  explicit InFlight(Emulator& emulator) : emulator_(emulator) { emulator_.begin_in_flight(); }
  ~InFlight() { emulator_.end_in_flight(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  Emulator& emulator_;
};

http::response<http::string_body> to_response(const Reply& reply, unsigned version,
                                              bool keep_alive) {
  http::response<http::string_body> response;
  response.version(version);
  response.result(reply.status);
  response.set(http::field::server, "imds-emulator");
  response.set(http::field::content_type, "application/json; charset=utf-8");
  if (reply.retry_after) response.set(http::field::retry_after, *reply.retry_after);
  if (!reply.allow.empty()) response.set(http::field::allow, reply.allow);
  const unsigned status = reply.status;
  // These statuses must not carry a body (Beast refuses one).
  if (status >= 200 && status != 204 && status != 304) response.body() = reply.body;
  response.keep_alive(keep_alive);
  response.prepare_payload();
  return response;
}

void log_request(const Request& request, const Reply& reply,
                 std::chrono::steady_clock::time_point started) {
  const auto elapsed = std::chrono::steady_clock::now() - started;
  nlohmann::json fields = reply.log.is_object() ? reply.log : nlohmann::json::object();
  fields["method"] = std::string(request.method_string());
  fields["status"] = reply.status;
  fields["duration_ms"] = std::chrono::duration<double, std::milli>(elapsed).count();
  if (reply.log.is_null()) {  // not the token route
    fields["target"] = std::string(request.target());
    tb::log::debug("request", fields);
    return;
  }
  if (!fields.contains("route")) fields["route"] = "/metadata/identity/oauth2/token";
  if (reply.action != Action::respond) fields["action"] = std::string(to_string(reply.action));
  tb::log::info("token request", fields);
}

}  // namespace

struct Server::State : std::enable_shared_from_this<Server::State> {
  State(asio::io_context& io, Emulator& emu, const tcp::endpoint& endpoint,
        std::chrono::milliseconds timeout, std::shared_ptr<asio::ssl::context> tls_context)
      : acceptor(io, endpoint), emulator(emu), read_timeout(timeout), tls(std::move(tls_context)) {}

  asio::awaitable<void> accept_loop();
  template <class Stream>
  void spawn(const std::shared_ptr<Connection<Stream>>& conn);
  template <class Stream>
  asio::awaitable<void> session(std::shared_ptr<Connection<Stream>> conn);
  // Sends `reply` (or misbehaves as its action says); false when the connection must close.
  template <class Stream>
  asio::awaitable<bool> deliver(Connection<Stream>& conn, const Reply& reply, unsigned version,
                                bool keep_alive);

  tcp::acceptor acceptor;
  Emulator& emulator;
  std::chrono::milliseconds read_timeout;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain HTTP
  std::set<std::shared_ptr<ConnectionBase>> connections;
  bool stopped = false;
};

asio::awaitable<void> Server::State::accept_loop() {
  while (!stopped) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopped) co_return;
      tb::log::warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(use_nothrow);  // e.g. out of file descriptors: don't spin
      continue;
    }
    if (tls) {
      spawn(std::make_shared<Connection<TlsStream>>(std::move(socket), *tls));
    } else {
      spawn(std::make_shared<Connection<beast::tcp_stream>>(std::move(socket)));
    }
  }
}

template <class Stream>
void Server::State::spawn(const std::shared_ptr<Connection<Stream>>& conn) {
  connections.insert(conn);
  // Each session keeps the State alive through its completion handler.
  asio::co_spawn(acceptor.get_executor(), session(conn),
                 [self = shared_from_this(), conn](const std::exception_ptr& error) {
                   self->connections.erase(conn);
                   if (error) tb::log::error("session failed with an exception");
                 });
}

template <class Stream>
asio::awaitable<void> Server::State::session(std::shared_ptr<Connection<Stream>> conn) {
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    conn->tcp().expires_after(read_timeout);
    auto [ec] = co_await conn->stream.async_handshake(asio::ssl::stream_base::server, use_nothrow);
    if (ec) {
      // Typically a client that does not trust the test CA: it aborts the handshake.
      tb::log::info("TLS handshake failed", {{"error", ec.message()}});
      conn->tcp().close();
      co_return;
    }
  }
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    conn->tcp().expires_after(read_timeout);
    auto [ec, bytes] = co_await http::async_read(conn->stream, buffer, parser, use_nothrow);
    if (ec == http::error::end_of_stream) break;  // the client closed: normal
    if (ec) {
      // Answer bad input with a JSON error; timeouts and resets just close.
      Reply reply;
      if (ec == http::error::header_limit) {
        reply = error_reply(431, "request_header_fields_too_large", "headers exceed 8 KiB");
      } else if (ec == http::error::body_limit) {
        reply = error_reply(413, "payload_too_large", "body exceeds 64 KiB");
      } else if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        reply = error_reply(400, "invalid_request", "malformed HTTP request");
      } else {
        break;
      }
      co_await deliver(*conn, reply, 11, false);
      break;
    }

    const Request request = parser.release();
    const auto started = std::chrono::steady_clock::now();
    auto routed = emulator.dispatch(request);
    bool keep_alive = request.keep_alive();
    if (auto* job = std::get_if<TokenJob>(&routed)) {
      emulator.record_call(*job, Clock::now());
      InFlight in_flight(emulator);
      if (job->step.delay.count() > 0) {
        conn->timer.expires_after(job->step.delay);
        auto [wait_ec] = co_await conn->timer.async_wait(use_nothrow);
        if (wait_ec || stopped) break;
      }
      const Reply reply = emulator.complete(*job, Clock::now());
      keep_alive = co_await deliver(*conn, reply, request.version(), keep_alive);
      log_request(request, reply, started);
    } else {
      const Reply& reply = std::get<Reply>(routed);
      keep_alive = co_await deliver(*conn, reply, request.version(), keep_alive);
      log_request(request, reply, started);
    }
    if (!keep_alive || stopped) break;
  }
  error_code ignored;
  conn->tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  conn->tcp().close();
}

template <class Stream>
asio::awaitable<bool> Server::State::deliver(Connection<Stream>& conn, const Reply& reply,
                                             unsigned version, bool keep_alive) {
  error_code ignored;
  switch (reply.action) {
    case Action::drop:
      co_return false;
    case Action::hang: {
      // Read (and discard) until the peer goes away or stop() closes the socket.
      conn.tcp().expires_never();
      std::array<char, 512> scratch{};
      for (;;) {
        auto [ec, n] = co_await conn.stream.async_read_some(asio::buffer(scratch), use_nothrow);
        if (ec) {
          tb::log::debug("hang ended", {{"reason", ec.message()}});
          co_return false;
        }
      }
    }
    case Action::reset: {
      // Promise more body than is sent, then abort the connection (RST).
      const std::string head =
          "HTTP/1.1 " + std::to_string(reply.status) + " " +
          std::string(http::obsolete_reason(http::int_to_status(reply.status))) +
          "\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: " +
          std::to_string(reply.body.size() + 1024) + "\r\n\r\n" + reply.body;
      conn.tcp().expires_after(read_timeout);
      co_await asio::async_write(conn.stream, asio::buffer(head), use_nothrow);
      conn.tcp().socket().set_option(tcp::socket::linger(true, 0), ignored);
      conn.tcp().socket().close(ignored);
      co_return false;
    }
    default: {
      auto response = to_response(reply, version, keep_alive);
      conn.tcp().expires_after(read_timeout);
      auto [ec, n] = co_await http::async_write(conn.stream, response, use_nothrow);
      co_return !ec && keep_alive;
    }
  }
}

Server::Server(asio::io_context& io, Emulator& emulator, const tcp::endpoint& endpoint,
               std::chrono::milliseconds read_timeout, std::shared_ptr<asio::ssl::context> tls)
    : state_(std::make_shared<State>(io, emulator, endpoint, read_timeout, std::move(tls))) {}

Server::~Server() = default;

unsigned short Server::port() const { return state_->acceptor.local_endpoint().port(); }

void Server::start() {
  asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(),
                 [state = state_](const std::exception_ptr& error) {
                   if (error) tb::log::error("accept loop failed with an exception");
                 });
}

void Server::stop() {
  state_->stopped = true;
  error_code ignored;
  state_->acceptor.close(ignored);
  for (const auto& conn : state_->connections) conn->close();
}

}  // namespace imds_emulator
