#include "broker/watch.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include "broker/refresh.hpp"
#include "tb/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

namespace broker {

namespace asio = boost::asio;
using nlohmann::json;

namespace {
constexpr std::string_view kKeepalive = ": keep-alive\n\n";
constexpr std::string_view kShutdown =
    "event: shutdown\ndata: {\"reason\":\"token-broker is shutting down; reconnect\"}\n\n";
}  // namespace

std::string watch_event(const TokenKey& key, const Token& token, bool include_token, SteadyTime now,
                        bool first) {
  json data = {{"resource", key.resource},
               {"identity", to_string(key.identity)},
               {"version", token.version},
               {"token_sha256", token.sha256},
               {"expires_on", token.upstream.expires_on},
               {"expires_in", std::max<std::int64_t>(0, time_left(token, now).count())},
               {"forced", token.forced}};
  if (include_token) data["access_token"] = token.upstream.access_token;
  std::string out;
  if (first) out += "retry: 1000\n";  // an EventSource reconnects after 1 s
  out += "id: " + std::to_string(token.version) + "\nevent: token\ndata: ";
  out += data.dump(-1, ' ', false, json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

Watchers::Watchers(asio::any_io_executor executor, TokenCache& cache, const Clock& clock,
                   Metrics& metrics, WatchOptions options, HandedOut handed_out)
    : executor_(std::move(executor)),
      cache_(cache),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      handed_out_(std::move(handed_out)),
      tick_(executor_) {}

Watchers::~Watchers() {
  // The streams may outlive this (their sessions end later): they must not call back into it.
  for (auto& watcher : watchers_) watcher.stream->on_end(nullptr);
}

std::shared_ptr<tb::http::Stream> Watchers::add(const TokenKey& key, bool include_token,
                                                const Token& current, std::string& first_event,
                                                std::optional<PeerCredentials> caller) {
  auto stream = std::make_shared<tb::http::Stream>(executor_, options_.buffer_bytes);
  auto it =
      watchers_.insert(watchers_.end(), Watcher{key, key.flat(), include_token, stream, caller});
  metrics_.watcher(+1);
  cache_.watched(key, +1);
  stream->on_end([this, it] {
    cache_.watched(it->key, -1);
    if (it->stream->dropped()) {
      metrics_.watcher_dropped();
      tb::log::warn("watch stream dropped: its reader stopped reading",
                    {{"resource", it->key.resource},
                     {"identity", to_string(it->key.identity)},
                     {"buffer_bytes", options_.buffer_bytes},
                     {"why", it->stream->overflowed() ? "backlog over --watch-buffer"
                                                      : "a write stalled for 10 s"}});
    }
    watchers_.erase(it);
    metrics_.watcher(-1);
  });
  first_event = watch_event(key, current, include_token, clock_.steady_now(), true);
  if (closed_) {  // shutting down already: the first event, then the end
    first_event += kShutdown;
    stream->finish();
  }
  if (!ticking_) {
    ticking_ = true;
    asio::co_spawn(executor_, keepalive_loop(), asio::detached);
  }
  return stream;
}

void Watchers::push(Watcher& watcher, std::string_view bytes) {
  (void)watcher.stream->push(bytes);  // false: dropped (aborted), counted when its session ends
}

void Watchers::deliver(const TokenKey& key, const TokenPtr& token) {
  if (closed_ || !token || watchers_.empty()) return;
  const auto flat = key.flat();
  const auto now = clock_.steady_now();
  std::string with_token;
  std::string without_token;
  for (auto& watcher : watchers_) {
    if (watcher.flat != flat) continue;
    auto& event = watcher.include_token ? with_token : without_token;
    if (event.empty()) event = watch_event(key, *token, watcher.include_token, now);
    push(watcher, event);
    if (watcher.include_token && handed_out_ && !watcher.stream->ended()) {
      handed_out_(key, *token, watcher.caller);
    }
  }
}

void Watchers::close_all() {
  closed_ = true;
  tick_.cancel();
  for (auto& watcher : watchers_) {
    push(watcher, kShutdown);
    watcher.stream->finish();
  }
}

asio::awaitable<void> Watchers::keepalive_loop() {
  while (!closed_) {
    tick_.expires_after(options_.keepalive);
    auto [ec] = co_await tick_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || closed_) break;
    for (auto& watcher : watchers_) push(watcher, kKeepalive);
  }
  ticking_ = false;
}

}  // namespace broker
