#include "broker/http_server.hpp"

#include "tb/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace broker {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace std::chrono_literals;

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kWriteTimeout = 10s;

/// The answer to a request that could not even be parsed.
Response parse_error_response(const beast::error_code& ec) {
  Request dummy;
  dummy.version(11);
  dummy.keep_alive(false);
  ServeError error{400, "invalid_request", "the request is not valid HTTP/1.1: " + ec.message(),
                   0s};
  if (ec == beast::http::error::header_limit) {
    error = ServeError{
        431, "request_header_fields_too_large",
        "the request line and headers exceed the limit; send fewer or shorter headers", 0s};
  } else if (ec == beast::http::error::unexpected_body || ec == beast::http::error::body_limit) {
    error = ServeError{413, "payload_too_large", "token requests must not carry a body", 0s};
  }
  auto response = make_error(dummy, error);
  response.keep_alive(false);
  return response;
}
}  // namespace

template <class Protocol>
struct HttpServer<Protocol>::Session {
  beast::basic_stream<Protocol>* stream = nullptr;
  bool busy = false;
};

template <class Protocol>
HttpServer<Protocol>::HttpServer(Acceptor acceptor, Handler handler, ServerLimits limits,
                                 Metrics* metrics, Admission admission)
    : acceptor_(std::move(acceptor)),
      handler_(std::move(handler)),
      limits_(limits),
      metrics_(metrics),
      admission_(std::move(admission)) {}

template <class Protocol>
void HttpServer<Protocol>::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

template <class Protocol>
void HttpServer<Protocol>::drain() {
  draining_ = true;
  beast::error_code ignored;
  acceptor_.close(ignored);
  for (Session* session : sessions_) {
    if (!session->busy) session->stream->cancel();
  }
}

template <class Protocol>
asio::awaitable<void> HttpServer<Protocol>::accept_loop() {
  while (!draining_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining_) break;
      // EMFILE and friends: log, back off a little, keep serving the connections we have.
      tb::log::warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(acceptor_.get_executor(), 100ms);
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    if (sessions_.size() >= limits_.max_connections) {
      tb::log::warn("connection refused: too many open connections",
                    {{"max_connections", limits_.max_connections}});
      beast::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

template <class Protocol>
asio::awaitable<void> HttpServer<Protocol>::serve(typename Protocol::socket socket) {
  beast::basic_stream<Protocol> stream(std::move(socket));
  Session session{&stream, false};
  auto self = sessions_.insert(sessions_.end(), &session);
  if (metrics_ != nullptr) metrics_->connection_opened();
  beast::flat_buffer buffer;
  const std::optional<ServeError> refusal =
      admission_ ? admission_(stream.socket()) : std::optional<ServeError>{};

  while (!draining_) {
    session.busy = false;
    if (buffer.size() == 0) {
      // Idle keep-alive: wait for the first byte of the next request.
      stream.expires_after(limits_.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), use_nothrow);
      if (ec) break;  // closed by the peer, idle timeout, or drained
      buffer.commit(n);
    }
    session.busy = true;
    beast::http::request_parser<beast::http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.header_limit));
    stream.expires_after(limits_.header_timeout);
    auto [read_ec, read_bytes] =
        co_await beast::http::async_read(stream, buffer, parser, use_nothrow);
    Response response;
    if (read_ec) {
      if (read_ec == beast::http::error::end_of_stream || read_ec == beast::error::timeout ||
          read_ec == asio::error::operation_aborted || read_ec == asio::error::connection_reset ||
          read_ec == asio::error::eof) {
        break;
      }
      response = parse_error_response(read_ec);
    } else if (refusal) {
      response = make_error(parser.get(), *refusal);
      response.keep_alive(false);
    } else {
      // A handler that throws must not take the session down without an answer (and without
      // leaving the session list, which draining walks).
      try {
        response = co_await handler_(parser.get());
      } catch (const std::exception& e) {
        tb::log::error("request handler failed", {{"error", e.what()}});
        response = make_error(parser.get(), ServeError{500, "internal_error",
                                                       "the broker failed to answer this request; "
                                                       "see its log",
                                                       0s});
        response.keep_alive(false);
      }
    }
    if (draining_) response.keep_alive(false);
    stream.expires_after(kWriteTimeout);
    auto [write_ec, written] = co_await beast::http::async_write(stream, response, use_nothrow);
    if (write_ec || !response.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(Protocol::socket::shutdown_send, ignored);
  stream.close();
  sessions_.erase(self);
  if (metrics_ != nullptr) metrics_->connection_closed();
}

template class HttpServer<asio::local::stream_protocol>;
template class HttpServer<asio::ip::tcp>;

}  // namespace broker
