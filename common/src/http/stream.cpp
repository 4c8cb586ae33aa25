#include "tb/http/stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <utility>

namespace tb::http {

namespace asio = boost::asio;

Stream::Stream(const asio::any_io_executor& executor, std::size_t max_buffered)
    : wake_(executor, asio::steady_timer::time_point::max()), max_buffered_(max_buffered) {}

bool Stream::push(std::string_view bytes) {
  if (ended()) return false;
  // One push always fits an empty queue: the bound is on the backlog, not on an event's size.
  if (!queued_.empty() && queued_.size() + bytes.size() > max_buffered_) {
    overflowed_ = true;
    abort();
    return false;
  }
  queued_ += bytes;
  wake_.cancel();
  return true;
}

void Stream::finish() {
  if (ended()) return;
  finished_ = true;
  wake_.cancel();
}

void Stream::abort() {
  if (aborted_) return;
  aborted_ = true;
  queued_.clear();
  wake_.cancel();
  if (on_abort_) on_abort_();
}

asio::awaitable<std::optional<std::string>> Stream::next() {
  while (queued_.empty() && !ended()) {
    wake_.expires_at(asio::steady_timer::time_point::max());
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (aborted_ || queued_.empty()) co_return std::nullopt;
  co_return std::exchange(queued_, std::string());
}

void Stream::close() {
  if (closed_) return;
  closed_ = true;
  aborted_ = aborted_ || !finished_;
  on_abort_ = nullptr;
  if (auto callback = std::exchange(on_end_, nullptr)) callback();
}

}  // namespace tb::http
