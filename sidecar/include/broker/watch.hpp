#pragma once
// Watchers of GET /v1/token/watch: one Server-Sent Events stream each, told of every new token of
// its key (refresh, forced refresh) as it is installed, kept alive with comments, finished on
// shutdown. A watcher that stops reading is dropped when its stream's buffer is full.

#include "broker/cache.hpp"
#include "broker/metrics.hpp"
#include "broker/peer.hpp"
#include "broker/token.hpp"
#include "tb/http/stream.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

namespace broker {

struct WatchOptions {
  std::chrono::seconds keepalive{15};                 ///< a comment line this often on every stream
  std::size_t buffer_bytes = std::size_t{64} * 1024;  ///< per watcher, beyond the socket's buffer
};

/// The SSE event for `token` of `key` at `now`: `id` is the token's version, `event: token`,
/// `data` one JSON line (resource, identity, version, token_sha256, expires_on, expires_in,
/// forced; access_token only with `include_token`). `first` adds the reconnection delay.
std::string watch_event(const TokenKey& key, const Token& token, bool include_token, SteadyTime now,
                        bool first = false);

class Watchers {
 public:
  /// Told of every token an include_token watcher is sent after its first (the audit log).
  using HandedOut =
      std::function<void(const TokenKey&, const Token&, const std::optional<PeerCredentials>&)>;

  Watchers(boost::asio::any_io_executor executor, TokenCache& cache, const Clock& clock,
           Metrics& metrics, WatchOptions options, HandedOut handed_out = nullptr);
  ~Watchers();
  Watchers(const Watchers&) = delete;
  Watchers& operator=(const Watchers&) = delete;

  /// A new watcher of `key`, whose first event (`current`, rendered into `first_event`) goes out
  /// with the response's head; the stream ends when the connection does.
  std::shared_ptr<tb::http::Stream> add(const TokenKey& key, bool include_token,
                                        const Token& current, std::string& first_event,
                                        std::optional<PeerCredentials> caller = std::nullopt);
  /// `key` has a new token (the cache's listener): each of its watchers gets an event.
  void deliver(const TokenKey& key, const TokenPtr& token);
  /// Shutdown: every watcher gets `event: shutdown`, then its stream ends cleanly.
  void close_all();
  std::size_t size() const { return watchers_.size(); }

 private:
  struct Watcher {
    TokenKey key;
    std::string flat;
    bool include_token = false;
    std::shared_ptr<tb::http::Stream> stream;
    std::optional<PeerCredentials> caller;
  };
  boost::asio::awaitable<void> keepalive_loop();
  /// Pushes `bytes`; counts a watcher dropped for not reading.
  void push(Watcher& watcher, std::string_view bytes);

  boost::asio::any_io_executor executor_;
  TokenCache& cache_;
  const Clock& clock_;
  Metrics& metrics_;
  WatchOptions options_;
  HandedOut handed_out_;
  std::list<Watcher> watchers_;
  boost::asio::steady_timer tick_;
  bool ticking_ = false;
  bool closed_ = false;
};

}  // namespace broker
