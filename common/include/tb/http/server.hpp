#pragma once
// An HTTP/1.1 keep-alive server over a Unix socket or TCP, hardened against hostile local
// callers: every connection is one coroutine with a header timeout, an idle timeout, a header
// size limit, a body limit (none by default) and a request budget; connections beyond the limit
// get a short 503 and are closed; SIGTERM-style draining loses no request (drain, close_busy).
// Runs on one thread; the request logic is the injected handler, which may hand blocking work
// to a thread pool of its own (offload()).
// The one server core of the HTTP layer: it knows nothing of tokens (DESIGN.md, Layers).

#include "tb/http/message.hpp"
#include "tb/http/stream.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <any>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>

namespace tb::http {

struct ServerLimits {
  /// Request line + headers, in bytes; more is answered 431 and the connection closed.
  std::size_t header_limit = std::size_t{8} * 1024;
  /// Time to send a request's headers: for a new connection counted from the accept (a caller
  /// that connects and sends nothing holds its slot that long), for a kept-alive one from the
  /// request's first byte.
  std::chrono::seconds header_timeout{10};
  /// A kept-alive connection waiting for its next request is closed after this long.
  std::chrono::seconds idle_timeout{60};
  /// Connections open at once; more are answered 503 (Connection: close) without being read.
  std::size_t max_connections = 1024;
  /// Requests served on one connection; the last response says Connection: close. 0: no limit.
  std::size_t max_requests_per_connection = 1000;
  /// Largest request body taken, in bytes; a larger one is answered 413 (before it is sent, when
  /// Content-Length says so). 0: requests must not carry a body. The body must arrive within
  /// the header timeout; a caller that sends `Expect: 100-continue` gets its 100 Continue.
  std::size_t body_limit = 0;
};

using Handler = std::function<boost::asio::awaitable<Response>(const Request&)>;
/// A handler that also gets what the server's admission learnt about the connection's caller
/// (Admitted::caller: its credentials, say), the same for every request on the connection.
using CallerHandler =
    std::function<boost::asio::awaitable<Response>(const Request&, const std::any& caller)>;
/// Renders the server's own errors (431, 413, 400 for unparsable requests, 500 for a handler that
/// threw, 503 over the connection limit) and admission refusals in the application's shape.
using ErrorRenderer = std::function<Response(const Request&, const Error&)>;
/// Told +1 when a connection is accepted and -1 when it is closed (for a connections gauge).
using ConnectionObserver = std::function<void(int delta)>;

/// What a server is built with besides its acceptor and handler; every member may stay default.
struct ServerOptions {
  ServerLimits limits;
  /// Default: error_response (JSON `{"error","error_description"}`, no Server header).
  ErrorRenderer render_error;
  ConnectionObserver on_connection;
};

template <class Protocol>
class HttpServer {
 public:
  using Acceptor = typename Protocol::acceptor;
  /// What admission decided about a connection.
  struct Admitted {
    std::optional<Error> refusal;  ///< the answer to every request on the connection
    std::any caller;               ///< for a CallerHandler: who is calling
  };
  /// Decides once per connection whether its caller may be served, and who it is.
  using Admission = std::function<Admitted(typename Protocol::socket&)>;

  HttpServer(Acceptor acceptor, Handler handler, ServerOptions options,
             Admission admission = nullptr);
  HttpServer(Acceptor acceptor, CallerHandler handler, ServerOptions options, Admission admission);

  /// Starts the accept loop on the acceptor's executor.
  void start();
  /// Graceful stop: stops accepting, answers every request already received (a handler that is
  /// working finishes; requests already in a connection's buffer or socket are read and
  /// answered), the last one on each connection with `Connection: close`; a connection with no
  /// request pending gets kDrainIdleGrace to send one more, then is closed. `on_drained` is
  /// posted once no connection is left (at once when none is open). Handlers that wait on
  /// something (a token fetch) are the program's to end: drain() does not interrupt them.
  void drain(std::function<void()> on_drained = nullptr);
  /// The end of a drain's grace: every request whose handler is still working is answered
  /// `error` at once (the program's 503 with Retry-After), its connection shut for writing; the
  /// handler's own answer is dropped when it comes. After this the program may stop its
  /// io_context without leaving a caller unanswered.
  void close_busy(const Error& error);
  /// Makes the answer to `request` (which a handler of this server is working on) a stream: the
  /// handler's response is the head (its body, if any, the first bytes), sent with
  /// `Connection: close` and no Content-Length, and then whatever `stream` is given, until it
  /// ends or the caller goes away. The connection serves nothing else; its socket's send buffer
  /// is made small, so that Stream's bound is what a reader that stops reading costs. drain()
  /// finishes every stream. False when `request` is not one being handled here.
  bool attach_stream(const Request& request, std::shared_ptr<Stream> stream);
  /// Connections open now (including ones being closed).
  std::size_t connections() const { return open_; }
  /// Connections whose handler is working on a request now.
  std::size_t busy() const;

  /// How long a connection with no request pending is kept open after drain() began: the time
  /// a client that just read its previous answer has to send the request it is writing, so that
  /// the close does not race it (a request written to a closed connection is lost).
  static constexpr std::chrono::milliseconds kDrainIdleGrace{1000};

 private:
  using AnyHandler = std::variant<Handler, CallerHandler>;
  HttpServer(Acceptor acceptor, AnyHandler handler, ServerOptions options, Admission admission);
  struct Session;
  /// A log line for an event that may come in floods: at most one per interval, with how many
  /// times the event happened since the last line.
  struct Throttled {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t unlogged = 0;
    /// Counts one event; the count to log when a line is due.
    std::optional<std::uint64_t> count();
    /// The events not logged yet, when a line is due.
    std::optional<std::uint64_t> leftover();
  };

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(typename Protocol::socket socket);
  void refuse(typename Protocol::socket& socket);
  /// Posts on_drained_ once draining has closed the last connection.
  void notify_if_drained();
  /// The answer to a request that gets `error` and closes its connection.
  Response close_with(const Request& request, const Error& error) const;

  Acceptor acceptor_;
  AnyHandler handler_;
  ServerLimits limits_;
  ErrorRenderer render_error_;
  ConnectionObserver on_connection_;
  Admission admission_;
  std::string busy_response_;  ///< the 503 sent to connections beyond max_connections
  /// Every open connection; a session removes itself when it ends.
  std::list<std::shared_ptr<Session>> sessions_;
  std::size_t open_ = 0;
  Throttled refused_log_;
  Throttled accept_error_log_;
  bool draining_ = false;
  std::function<void()> on_drained_;
};

/// Runs `work` (a blocking call: a database query) on `pool` and resumes the calling coroutine
/// on its own executor with the result: how a handler keeps blocking work off the server's
/// thread.
template <class Executor, class Work>
auto offload(const Executor& pool, Work work)
    -> boost::asio::awaitable<std::invoke_result_t<Work&>> {
  co_return co_await boost::asio::co_spawn(
      pool,
      [work = std::move(work)]() mutable -> boost::asio::awaitable<std::invoke_result_t<Work&>> {
        co_return work();
      },
      boost::asio::use_awaitable);
}

extern template class HttpServer<boost::asio::local::stream_protocol>;
extern template class HttpServer<boost::asio::ip::tcp>;

}  // namespace tb::http
