#pragma once
// The body of a response that goes on (Server-Sent Events): the program pushes bytes whenever it
// has something to say, and the server writes them in order until the stream ends. Bounded: a
// reader that stops reading is dropped (the stream aborted, its connection closed) rather than
// buffered for. Runs on the server's thread, like the handlers.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tb::http {

class Stream {
 public:
  /// `max_buffered`: bytes that may wait for the connection (beyond the socket's own buffer).
  Stream(const boost::asio::any_io_executor& executor, std::size_t max_buffered);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  /// Queues `bytes` to send. False when the stream has ended, or when more than max_buffered
  /// bytes would wait (bytes that fit nothing else in the queue are taken whatever their size):
  /// the reader is not reading, and the stream is aborted.
  bool push(std::string_view bytes);
  /// Ends the stream once what is queued has been sent (a clean close).
  void finish();
  /// Ends the stream now: what is queued is dropped, a write in progress cancelled.
  void abort();
  bool ended() const { return finished_ || aborted_; }
  bool aborted() const { return aborted_; }
  /// It was aborted because more than max_buffered bytes would have waited.
  bool overflowed() const { return overflowed_; }
  /// The reader stopped reading: its backlog overflowed, or a write to it stalled (the server's
  /// write timeout).
  bool dropped() const { return overflowed_ || stalled_; }
  /// Called once, when the server is done with the stream (the connection is closing, for
  /// whatever reason): where the program forgets it.
  void on_end(std::function<void()> callback) { on_end_ = std::move(callback); }

  // The server's side.
  /// The bytes queued since the last call, waiting for some; nullopt once the stream has ended
  /// (after the queue is empty, unless aborted).
  boost::asio::awaitable<std::optional<std::string>> next();
  /// The server's write stalled past its timeout: the stream ends, dropped().
  void stalled() {
    stalled_ = true;
    abort();
  }
  /// How the server is told to cancel its write when the stream is aborted.
  void on_abort(std::function<void()> callback) { on_abort_ = std::move(callback); }
  /// The server is done: calls on_end once.
  void close();

 private:
  boost::asio::steady_timer wake_;
  std::size_t max_buffered_;
  std::string queued_;
  bool finished_ = false;
  bool aborted_ = false;
  bool overflowed_ = false;
  bool stalled_ = false;
  bool closed_ = false;
  std::function<void()> on_end_;
  std::function<void()> on_abort_;
};

}  // namespace tb::http
