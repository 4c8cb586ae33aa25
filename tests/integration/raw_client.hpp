#pragma once
// A raw connection to a Unix socket for tests that check the wire itself (what a server sends,
// when it closes, whether the close is a reset): bytes in, bytes out, nothing fixed up.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <sys/resource.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace integration {

using Answer = boost::beast::http::response<boost::beast::http::string_body>;

/// All complete responses at the front of `bytes`; `rest` is what follows them.
std::vector<Answer> parse_responses(std::string_view bytes, std::string_view* rest = nullptr);

class Raw {
 public:
  enum class End { open, eof, reset };

  /// Connects to `path`; ok() says whether it worked.
  explicit Raw(const std::string& path);
  ~Raw() { close(); }
  Raw(Raw&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Raw& operator=(Raw&&) = delete;
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool ok() const { return fd_ >= 0; }
  void close();
  void shutdown_write();

  /// False when the server no longer takes bytes (it closed the connection).
  bool send(std::string_view bytes);

  /// Reads what arrives within `wait`; stops early at the end of the stream or a reset.
  End read_for(std::chrono::milliseconds wait, std::string& into);

  /// Reads until `done(into)` holds (checked after each arrival), the stream ends, or `wait`
  /// passes (End::open; check `done` again to tell).
  End read_until(const std::function<bool(const std::string&)>& done,
                 std::chrono::milliseconds wait, std::string& into);

  /// Everything until the server closes the connection (or `wait` passes: End::open).
  std::pair<std::string, End> read_to_end(
      std::chrono::milliseconds wait = std::chrono::seconds(10));

  /// The next response, as soon as it is complete (for load: no polling interval); nullopt when
  /// the connection ends or `wait` passes first.
  std::optional<Answer> next_response(std::chrono::milliseconds wait = std::chrono::seconds(10));

  /// Reads until `count` complete responses have arrived, the connection ends, or `wait` passes.
  std::vector<Answer> read_responses(std::size_t count,
                                     std::chrono::milliseconds wait = std::chrono::seconds(10));

 private:
  int fd_ = -1;
  std::string pending_;
};

/// Sets this process's open-file soft limit (children inherit it) to `soft`, unless it is
/// higher already and `lower` is false; restores the old limit when it goes away.
class FileLimit {
 public:
  explicit FileLimit(rlim_t soft, bool lower = false) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    if (saved_.rlim_cur >= soft && !lower) return;
    if (saved_.rlim_max != RLIM_INFINITY && saved_.rlim_max < soft) {
      ok_ = false;
      return;
    }
    rlimit changed = saved_;
    changed.rlim_cur = soft;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &changed) == 0;
  }
  ~FileLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  FileLimit(const FileLimit&) = delete;
  FileLimit& operator=(const FileLimit&) = delete;
  bool ok() const { return ok_; }
  rlim_t hard() const { return saved_.rlim_max; }

 private:
  rlimit saved_{};
  bool ok_ = true;
};

}  // namespace integration
