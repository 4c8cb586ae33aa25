#include "tb/http/server.hpp"

#include "tb/log.hpp"

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <type_traits>
#include <utility>

namespace tb::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace std::chrono_literals;

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
using RequestParser = beast::http::request_parser<beast::http::string_body>;
constexpr auto kWriteTimeout = 10s;
/// What one read asks for: a token request is a few hundred bytes; longer headers take more
/// reads (and the buffer grows), up to the header limit.
constexpr std::size_t kReadChunk = 1024;
/// Before closing a connection whose caller may still be sending (a refused request, requests
/// pipelined beyond the budget), its input is read and dropped for at most this long and this
/// much: closing a socket with unread input resets the connection, and a reset can cost the
/// caller the response it has not read yet.
constexpr auto kLingerTime = 1s;
constexpr std::size_t kLingerBytes = std::size_t{64} * 1024;
/// A flood of refused connections (or failed accepts) logs one line per interval, not one each.
constexpr auto kLogInterval = 10s;

/// A request to answer when there is none (the caller's could not be parsed): HTTP/1.1, close.
Request no_request() {
  Request request;
  request.version(11);
  request.keep_alive(false);
  return request;
}

/// The answer to a request that could not even be parsed (or whose body is refused).
Error parse_error(const beast::error_code& ec, std::size_t body_limit) {
  if (ec == beast::http::error::header_limit) {
    return Error{431, "request_header_fields_too_large",
                 "the request line and headers exceed the limit; send fewer or shorter headers",
                 0s};
  }
  if (ec == beast::http::error::unexpected_body || ec == beast::http::error::body_limit) {
    if (body_limit == 0) {
      return Error{413, "payload_too_large", "requests to this server must not carry a body", 0s};
    }
    return Error{413, "payload_too_large",
                 body_limit % 1024 == 0
                     ? fmt::format("the request body is larger than {} KiB, this server's limit; "
                                   "send a smaller one",
                                   body_limit / 1024)
                     : fmt::format("the request body is larger than {} bytes, this server's limit; "
                                   "send a smaller one",
                                   body_limit),
                 0s};
  }
  return Error{400, "invalid_request", "the request is not valid HTTP/1.1: " + ec.message(), 0s};
}

/// The caller sent nothing but empty lines, more of them than a request's headers may take.
Error empty_lines_error() {
  return Error{400, "invalid_request",
               "only empty lines were received where a request line was expected", 0s};
}

Error busy_error(std::size_t max_connections) {
  return Error{503, "too_many_connections",
               fmt::format("the server has {} connections open, its connection limit; close idle "
                           "connections or retry shortly",
                           max_connections),
               1s};
}

/// Drops the CR and LF bytes in front of a request line (RFC 9112 section 2.2: a server SHOULD
/// ignore empty lines received before it); returns how many.
std::size_t skip_empty_lines(beast::flat_buffer& buffer) {
  const auto* data = static_cast<const char*>(buffer.data().data());
  std::size_t n = 0;
  while (n < buffer.size() && (data[n] == '\r' || data[n] == '\n')) ++n;
  buffer.consume(n);
  return n;
}

/// A request target in absolute form (`http://host/path?query`, RFC 9112 section 3.2.2, as
/// proxies and some clients send it) becomes the origin form the routes match (`/path?query`);
/// its authority replaces Host, as section 3.2.2 asks. Other targets are left as they are.
void to_origin_form(Request& request) {
  const auto target = request.target();
  if (target.empty() || target.front() == '/') return;  // the common case costs one compare
  const auto url = boost::urls::parse_absolute_uri(std::string_view(target.data(), target.size()));
  if (!url || (url->scheme_id() != boost::urls::scheme::http &&
               url->scheme_id() != boost::urls::scheme::https)) {
    return;
  }
  std::string origin(url->encoded_path());
  if (origin.empty()) origin = "/";
  if (url->has_query()) {
    origin += '?';
    origin += url->encoded_query();
  }
  const std::string authority(url->encoded_host_and_port());
  request.target(origin);
  request.set(beast::http::field::host, authority);
}

/// Errors that mean the caller went away or took too long: close without an answer.
bool is_disconnect(const beast::error_code& ec) {
  return ec == beast::http::error::end_of_stream || ec == beast::error::timeout ||
         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
         ec == asio::error::eof;
}

}  // namespace

/// One connection. Its deadline is enforced by a watchdog timer that is armed once and re-armed
/// only when it fires before the deadline (which moves with every request): a request costs a
/// clock read, not a timer set and cancelled per read as with beast::basic_stream. The timer's
/// pending wait shares ownership, so the session outlives a wait that completes after serve().
template <class Protocol>
struct HttpServer<Protocol>::Session {
  using Clock = std::chrono::steady_clock;
  explicit Session(typename Protocol::socket s)
      : socket(std::move(s)), watchdog(socket.get_executor()) {}

  typename Protocol::socket socket;
  asio::steady_timer watchdog;
  Clock::time_point deadline = Clock::time_point::max();  ///< max: none (a request is handled)
  bool watchdog_armed = false;
  bool timed_out = false;  ///< the deadline passed: the connection is closed without an answer
  bool closed = false;
  /// Between a complete request and the end of its response: draining lets it finish.
  bool busy = false;
  /// The request whose handler is working (null otherwise), for close_busy().
  const Request* handling = nullptr;
  /// close_busy() answered the request: the handler's own answer is dropped.
  bool abandoned = false;
  beast::flat_buffer buffer;  ///< bytes received and not parsed yet; allocated on the first read
  /// The response is a stream (attach_stream): after its head, the stream's bytes until it ends.
  std::shared_ptr<Stream> stream;

  static void expires_after(const std::shared_ptr<Session>& self, Clock::duration timeout) {
    self->deadline = Clock::now() + timeout;
    if (!self->watchdog_armed) arm(self);
  }
  void no_deadline() { deadline = Clock::time_point::max(); }
  /// Brings the deadline forward to `timeout` from now (never later than it is).
  static void shorten(const std::shared_ptr<Session>& self, Clock::duration timeout) {
    const auto until = Clock::now() + timeout;
    if (self->deadline <= until) return;
    self->deadline = until;
    if (self->watchdog_armed) {
      self->watchdog.cancel();  // the wait ends early and re-arms at the new deadline
    } else {
      arm(self);
    }
  }

  static void arm(std::shared_ptr<Session> self) {
    self->watchdog_armed = true;
    self->watchdog.expires_at(self->deadline);
    auto& timer = self->watchdog;
    timer.async_wait([self = std::move(self)](const beast::error_code&) {
      self->watchdog_armed = false;
      if (self->closed || self->deadline == Clock::time_point::max()) return;
      if (Clock::now() < self->deadline) {
        arm(self);
        return;
      }
      self->timed_out = true;
      beast::error_code ignored;
      self->socket.cancel(ignored);  // the pending wait, read or write ends: serve() closes
    });
  }

  /// Waits until the caller has sent something (an idle connection holds no read buffer while
  /// it waits), then reads what has arrived without blocking.
  asio::awaitable<beast::error_code> read_some() {
    while (true) {
      auto [ec] = co_await socket.async_wait(Protocol::socket::wait_read, use_nothrow);
      if (timed_out) co_return beast::error::timeout;
      if (ec) co_return ec;
      beast::error_code read_ec;
      const std::size_t n = socket.read_some(buffer.prepare(kReadChunk), read_ec);
      if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) continue;
      if (read_ec) co_return read_ec;
      buffer.commit(n);
      co_return beast::error_code{};
    }
  }

  /// Reads one request's header into `parser`: at most `limit` bytes in all, request line
  /// included. (Beast's own header_limit bounds only the part not parsed yet: a header of many
  /// short fields, arriving in several reads, would pass it.) Without a body limit, a request
  /// with a body is refused after its header.
  asio::awaitable<beast::error_code> read_header(RequestParser& parser, std::size_t limit,
                                                 bool bodies) {
    std::size_t parsed = 0;
    while (true) {
      if (buffer.size() > 0) {
        beast::error_code ec;
        const auto used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        parsed += used;
        if (ec && ec != beast::http::error::need_more) co_return ec;
        // (One put may take a whole header that is over the limit.)
        if (parsed > limit || (!parser.is_header_done() && parsed + buffer.size() > limit)) {
          co_return beast::http::error::header_limit;
        }
        if (parser.is_header_done()) {
          // Content-Length above 0 or chunked: a body follows.
          if (!parser.is_done() && !bodies) co_return beast::http::error::unexpected_body;
          co_return beast::error_code{};
        }
      }
      const auto ec = co_await read_some();
      if (ec == asio::error::eof) co_return beast::http::error::partial_message;
      if (ec) co_return ec;
    }
  }

  /// Reads the body of the request whose header `parser` holds (the parser's body limit
  /// bounds it), after a 100 Continue if the caller waits for one.
  asio::awaitable<beast::error_code> read_body(RequestParser& parser) {
    if (parser.is_done()) co_return beast::error_code{};
    if (beast::iequals(parser.get()[beast::http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      auto [ec, written] = co_await asio::async_write(socket, asio::buffer(kContinue), use_nothrow);
      if (timed_out) co_return beast::error::timeout;
      if (ec) co_return ec;
    }
    while (true) {
      if (buffer.size() > 0) {
        beast::error_code ec;
        buffer.consume(parser.put(buffer.data(), ec));
        if (ec && ec != beast::http::error::need_more) co_return ec;
        if (parser.is_done()) co_return beast::error_code{};
      }
      const auto ec = co_await read_some();
      if (ec == asio::error::eof) co_return beast::http::error::partial_message;
      if (ec) co_return ec;
    }
  }

  /// Writes the stream's bytes as they come, each write within kWriteTimeout, until the stream
  /// ends (finished: after its last bytes; aborted: at once) or the caller goes away.
  static asio::awaitable<void> stream_body(std::shared_ptr<Session> self) {
    const auto stream = self->stream;
    stream->on_abort([weak = std::weak_ptr<Session>(self)] {
      if (auto session = weak.lock()) {
        session->timed_out = true;  // the write in progress, if any, ends; serve() closes
        beast::error_code ignored;
        session->socket.cancel(ignored);
      }
    });
    while (!self->timed_out) {
      self->no_deadline();
      auto chunk = co_await stream->next();
      if (!chunk || self->timed_out) break;
      beast::error_code sync_ec;
      const std::size_t sent = self->socket.write_some(asio::buffer(*chunk), sync_ec);
      if (sync_ec && sync_ec != asio::error::would_block && sync_ec != asio::error::try_again) {
        break;
      }
      if (sent < chunk->size()) {
        expires_after(self, kWriteTimeout);
        auto [ec, written] =
            co_await asio::async_write(self->socket, asio::buffer(*chunk) + sent, use_nothrow);
        // The watchdog, not an abort: the reader has not taken a byte for kWriteTimeout.
        if (self->timed_out && !stream->aborted()) stream->stalled();
        if (ec || self->timed_out) break;
      }
    }
    stream->close();
  }

  /// Ends the response stream (the caller reads the end of it), then reads and drops what the
  /// caller still sends, within the linger bounds, so that the close is not a reset.
  static asio::awaitable<void> discard_input(std::shared_ptr<Session> self) {
    beast::error_code ignored;
    self->socket.shutdown(Protocol::socket::shutdown_send, ignored);
    expires_after(self, kLingerTime);
    for (std::size_t dropped = 0; dropped < kLingerBytes;) {
      self->buffer.clear();
      if (co_await self->read_some()) break;
      dropped += self->buffer.size();
    }
  }
};

template <class Protocol>
std::optional<std::uint64_t> HttpServer<Protocol>::Throttled::count() {
  ++unlogged;
  return leftover();
}

template <class Protocol>
std::optional<std::uint64_t> HttpServer<Protocol>::Throttled::leftover() {
  const auto now = std::chrono::steady_clock::now();
  if (unlogged == 0 || (last != decltype(last){} && now - last < kLogInterval)) {
    return std::nullopt;
  }
  last = now;
  return std::exchange(unlogged, 0);
}

template <class Protocol>
HttpServer<Protocol>::HttpServer(Acceptor acceptor, Handler handler, ServerOptions options,
                                 Admission admission)
    : HttpServer(std::move(acceptor), AnyHandler(std::move(handler)), std::move(options),
                 std::move(admission)) {}

template <class Protocol>
HttpServer<Protocol>::HttpServer(Acceptor acceptor, CallerHandler handler, ServerOptions options,
                                 Admission admission)
    : HttpServer(std::move(acceptor), AnyHandler(std::move(handler)), std::move(options),
                 std::move(admission)) {}

template <class Protocol>
HttpServer<Protocol>::HttpServer(Acceptor acceptor, AnyHandler handler, ServerOptions options,
                                 Admission admission)
    : acceptor_(std::move(acceptor)),
      handler_(std::move(handler)),
      limits_(options.limits),
      render_error_(options.render_error ? std::move(options.render_error)
                                         : ErrorRenderer([](const Request& r, const Error& e) {
                                             return error_response(r, e);
                                           })),
      on_connection_(std::move(options.on_connection)),
      admission_(std::move(admission)) {
  // The answer to connections beyond the limit, serialised once.
  serialize_response(close_with(no_request(), busy_error(limits_.max_connections)), busy_response_);
}

template <class Protocol>
Response HttpServer<Protocol>::close_with(const Request& request, const Error& error) const {
  auto response = render_error_(request, error);
  response.keep_alive(false);
  return response;
}

template <class Protocol>
void HttpServer<Protocol>::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

template <class Protocol>
void HttpServer<Protocol>::drain(std::function<void()> on_drained) {
  draining_ = true;
  on_drained_ = std::move(on_drained);
  beast::error_code ignored;
  acceptor_.close(ignored);
  // A connection waiting for a request (or in the middle of one) gets the grace to complete
  // it; one whose handler is working is answered first and decides then (serve()).
  for (const auto& session : sessions_) {
    if (session->stream) {
      session->stream->finish();  // what is queued goes out, then the connection closes
    } else if (!session->busy) {
      Session::shorten(session, kDrainIdleGrace);
    }
  }
  notify_if_drained();
}

template <class Protocol>
bool HttpServer<Protocol>::attach_stream(const Request& request, std::shared_ptr<Stream> stream) {
  for (const auto& session : sessions_) {
    if (session->handling != &request) continue;
    session->stream = std::move(stream);
    if (draining_) session->stream->finish();
    // The kernel's buffer for this connection, small: with the stream's own bound, it is what
    // a reader that stops reading can hold (Linux doubles it, and keeps a minimum).
    beast::error_code ignored;
    session->socket.set_option(asio::socket_base::send_buffer_size(8 * 1024), ignored);
    return true;
  }
  return false;
}

template <class Protocol>
void HttpServer<Protocol>::close_busy(const Error& error) {
  std::string output;
  for (const auto& session : sessions_) {
    if (session->handling == nullptr || session->abandoned) continue;
    session->abandoned = true;
    // Synchronous and non-blocking, like refuse(): the answer is small, and nothing else is
    // being written on a connection whose handler is working.
    serialize_response(close_with(*session->handling, error), output);
    beast::error_code ignored;
    session->socket.write_some(asio::buffer(output), ignored);
    session->socket.shutdown(Protocol::socket::shutdown_send, ignored);
  }
}

template <class Protocol>
void HttpServer<Protocol>::notify_if_drained() {
  if (!draining_ || open_ > 0 || !on_drained_) return;
  asio::post(acceptor_.get_executor(), std::exchange(on_drained_, nullptr));
}

template <class Protocol>
std::size_t HttpServer<Protocol>::busy() const {
  std::size_t n = 0;
  for (const auto& session : sessions_) n += session->busy ? 1 : 0;
  return n;
}

template <class Protocol>
void HttpServer<Protocol>::refuse(typename Protocol::socket& socket) {
  // Synchronous and non-blocking: a refused connection costs no coroutine and no wait. The 503
  // is small enough for an empty socket buffer; the request, if any has arrived, is not parsed.
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(busy_response_), ignored);
  socket.shutdown(Protocol::socket::shutdown_send, ignored);
  std::array<char, kReadChunk> scratch{};
  for (int i = 0; i < 4; ++i) {
    beast::error_code ec;
    if (socket.read_some(asio::buffer(scratch), ec) == 0 || ec) break;
  }
  socket.close(ignored);
}

template <class Protocol>
asio::awaitable<void> HttpServer<Protocol>::accept_loop() {
  while (!draining_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining_) break;
      // EMFILE and friends: back off a little, keep serving the connections we have.
      if (auto failures = accept_error_log_.count()) {
        tb::log::warn("accept failed", {{"error", ec.message()}, {"failures", *failures}});
      }
      asio::steady_timer pause(acceptor_.get_executor(), 100ms);
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    if (open_ >= limits_.max_connections) {
      refuse(socket);
      if (auto refused = refused_log_.count()) {
        tb::log::warn("connections refused: too many open connections",
                      {{"max_connections", limits_.max_connections}, {"refused", *refused}});
      }
      continue;
    }
    if (auto refused = refused_log_.leftover()) {
      tb::log::warn("connections refused: too many open connections",
                    {{"max_connections", limits_.max_connections}, {"refused", *refused}});
    }
    // Counted here, not in serve(): the limit must hold before the new coroutine first runs.
    ++open_;
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

template <class Protocol>
asio::awaitable<void> HttpServer<Protocol>::serve(typename Protocol::socket socket) {
  const auto session = std::make_shared<Session>(std::move(socket));
  auto self = sessions_.insert(sessions_.end(), session);
  if (on_connection_) on_connection_(+1);
  std::string output;  // the serialised response, its capacity kept across requests
  {
    // Reads and writes are tried without blocking; only waits go through the event loop.
    beast::error_code ignored;
    session->socket.non_blocking(true, ignored);
    // A response goes out in one write: Nagle would only hold back the last segment of a
    // large one.
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
      session->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
  }
  Admitted admitted = admission_ ? admission_(session->socket) : Admitted{};
  const std::optional<Error>& refusal = admitted.refusal;
  auto& buffer = session->buffer;
  std::size_t served = 0;
  bool linger = false;  // the caller may still be sending: drop its input before closing

  // A new connection has header_timeout from now for its first request's headers (the deadline
  // holds across reads until it is set again); a kept-alive one waits up to idle_timeout for
  // the next request's first byte, then has header_timeout for the rest.
  // While draining, both are the drain's idle grace at most.
  const auto timeout = [this](std::chrono::seconds normal) -> std::chrono::steady_clock::duration {
    if (!draining_) return normal;
    return std::min<std::chrono::steady_clock::duration>(normal, kDrainIdleGrace);
  };
  Session::expires_after(session, timeout(limits_.header_timeout));
  while (true) {
    session->busy = false;
    if (served > 0) {
      if (buffer.size() == 0) {
        Session::expires_after(session, timeout(limits_.idle_timeout));
        if (co_await session->read_some()) break;  // closed by the peer, idle timeout, drained
      }
      Session::expires_after(session, timeout(limits_.header_timeout));
    }
    // Empty lines in front of the request line are skipped, as many as the header limit.
    std::size_t empty_lines = skip_empty_lines(buffer);
    bool gone = false;
    while (buffer.size() == 0 && empty_lines <= limits_.header_limit) {
      if (co_await session->read_some()) {
        gone = true;  // closed by the peer, header timeout, or drained
        break;
      }
      empty_lines += skip_empty_lines(buffer);
    }
    if (gone) break;

    Response response;
    if (buffer.size() == 0) {
      response = close_with(no_request(), empty_lines_error());
      linger = true;
    } else {
      RequestParser parser;
      parser.header_limit(static_cast<std::uint32_t>(limits_.header_limit));
      parser.body_limit(limits_.body_limit);
      auto read_ec =
          co_await session->read_header(parser, limits_.header_limit, limits_.body_limit > 0);
      if (!read_ec) read_ec = co_await session->read_body(parser);
      if (read_ec) {
        if (is_disconnect(read_ec)) break;
        response = close_with(no_request(), parse_error(read_ec, limits_.body_limit));
        linger = true;
      } else {
        session->busy = true;
        session->no_deadline();  // the handler bounds its own waits (the request deadline)
        ++served;
        to_origin_form(parser.get());
        if (refusal) {
          response = close_with(parser.get(), *refusal);
        } else {
          // A handler that throws must not take the session down without an answer (and
          // without leaving the session list, which draining walks).
          try {
            session->handling = &parser.get();
            if (auto* plain = std::get_if<Handler>(&handler_)) {
              response = co_await (*plain)(parser.get());
            } else {
              response = co_await std::get<CallerHandler>(handler_)(parser.get(), admitted.caller);
            }
            session->handling = nullptr;
          } catch (const std::exception& e) {
            session->handling = nullptr;
            if (session->stream) {  // attached, then the handler failed: no stream after all
              session->stream->abort();
              session->stream->close();
              session->stream.reset();
            }
            tb::log::error("request handler failed", {{"error", e.what()}});
            response = close_with(
                parser.get(), Error{500, "internal_error",
                                    "the server failed to answer this request; see its log", 0s});
          }
        }
        if (session->stream) {
          // A body until the stream ends: the close delimits it (RFC 9112 section 6.3).
          response.keep_alive(false);
          response.erase(beast::http::field::content_length);
          response.chunked(false);
        }
        // The request budget bounds what one connection can hold on to; the caller reconnects.
        if (limits_.max_requests_per_connection != 0 &&
            served >= limits_.max_requests_per_connection) {
          response.keep_alive(false);
        }
      }
    }
    if (session->abandoned) break;  // answered by close_busy(); the socket is shut for writing
    if (draining_ && response.keep_alive()) {
      // Draining: what the caller has already sent is answered too; the last answer closes.
      beast::error_code ignored;
      if (buffer.size() == 0 && session->socket.available(ignored) == 0) {
        response.keep_alive(false);
      }
    }
    beast::error_code write_ec;
    if (response.chunked()) {
      Session::expires_after(session, kWriteTimeout);
      auto [ec, written] =
          co_await beast::http::async_write(session->socket, response, use_nothrow);
      write_ec = session->timed_out ? beast::error::timeout : ec;
    } else {
      // Head and body in one buffer and one write: Beast's serializer costs more instructions
      // than the rest of a cached-token request (serialize_response writes the same bytes).
      serialize_response(response, output);
      // Most responses fit into the socket's send buffer: one non-blocking write, without a
      // round through the event loop. What does not fit is written asynchronously, within the
      // write timeout.
      beast::error_code sync_ec;
      const std::size_t sent = session->socket.write_some(asio::buffer(output), sync_ec);
      if (sync_ec && sync_ec != asio::error::would_block && sync_ec != asio::error::try_again) {
        write_ec = sync_ec;
      } else if (sent < output.size()) {
        Session::expires_after(session, kWriteTimeout);
        const auto rest = asio::buffer(output) + sent;
        auto [ec, written] = co_await asio::async_write(session->socket, rest, use_nothrow);
        write_ec = session->timed_out ? beast::error::timeout : ec;
      }
    }
    if (write_ec) {
      linger = false;
      if (session->stream) session->stream->close();
      break;
    }
    if (session->stream) {
      session->busy = false;  // drain() finishes the stream rather than waiting for it
      co_await Session::stream_body(session);
      break;
    }
    if (!response.keep_alive()) {
      // Requests pipelined after this one are not answered; drop them rather than reset.
      beast::error_code ignored;
      if (buffer.size() > 0 || session->socket.available(ignored) > 0) linger = true;
      break;
    }
  }
  session->busy = false;
  if (session->stream) session->stream->close();  // (a handler that threw, close_busy())
  if (linger && !session->timed_out) co_await Session::discard_input(session);
  session->closed = true;
  beast::error_code ignored;
  session->watchdog.cancel();
  session->socket.shutdown(Protocol::socket::shutdown_send, ignored);
  session->socket.close(ignored);
  sessions_.erase(self);
  --open_;
  if (on_connection_) on_connection_(-1);
  notify_if_drained();
}

template class HttpServer<asio::local::stream_protocol>;
template class HttpServer<asio::ip::tcp>;

}  // namespace tb::http
