#pragma once
// An HTTP/1.1 keep-alive server over a Unix socket or TCP. Every connection is one coroutine
// with an idle timeout, a header timeout and a header size limit; request bodies are refused.
// Runs on one thread; the request logic is the injected handler.

#include "broker/api.hpp"
#include "broker/metrics.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <functional>
#include <list>
#include <optional>
#include <string>

namespace broker {

struct ServerLimits {
  std::size_t header_limit = 8 * 1024;
  std::chrono::seconds header_timeout{10};
  std::chrono::seconds idle_timeout{60};
  std::size_t max_connections = 1024;
};

using Handler = std::function<boost::asio::awaitable<Response>(const Request&)>;

template <class Protocol>
class HttpServer {
 public:
  using Acceptor = typename Protocol::acceptor;
  /// Decides once per connection whether its caller may be served; a refusal is the answer to
  /// every request on that connection.
  using Admission = std::function<std::optional<ServeError>(typename Protocol::socket&)>;

  HttpServer(Acceptor acceptor, Handler handler, ServerLimits limits, Metrics* metrics,
             Admission admission = nullptr);

  /// Starts the accept loop on the acceptor's executor.
  void start();
  /// Stops accepting, closes idle connections and lets busy ones finish their response.
  void drain();
  std::size_t connections() const { return sessions_.size(); }

 private:
  struct Session;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(typename Protocol::socket socket);

  Acceptor acceptor_;
  Handler handler_;
  ServerLimits limits_;
  Metrics* metrics_;
  Admission admission_;
  std::list<Session*> sessions_;
  bool draining_ = false;
};

extern template class HttpServer<boost::asio::local::stream_protocol>;
extern template class HttpServer<boost::asio::ip::tcp>;

}  // namespace broker
