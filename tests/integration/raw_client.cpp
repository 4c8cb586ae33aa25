// See raw_client.hpp.
#include "raw_client.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace integration {

namespace http = boost::beast::http;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// All complete responses at the front of `bytes`; `rest` is what follows them.
std::vector<Answer> parse_responses(std::string_view bytes, std::string_view* rest) {
  std::vector<Answer> answers;
  while (!bytes.empty()) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    boost::beast::error_code ec;
    const auto used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec || !parser.is_done()) break;
    answers.push_back(parser.release());
    bytes.remove_prefix(used);
  }
  if (rest != nullptr) *rest = bytes;
  return answers;
}

Raw::Raw(const std::string& path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  (void)std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void Raw::close() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void Raw::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool Raw::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

Raw::End Raw::read_for(std::chrono::milliseconds wait, std::string& into) {
  return read_until([](const std::string&) { return false; }, wait, into);
}

Raw::End Raw::read_until(const std::function<bool(const std::string&)>& done,
                         std::chrono::milliseconds wait, std::string& into) {
  const auto deadline = Clock::now() + wait;
  while (!done(into)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) return End::open;
    pollfd ready{fd_, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0) return End::eof;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return End::reset;
    }
    into.append(chunk, static_cast<std::size_t>(n));
  }
  return End::open;
}

std::pair<std::string, Raw::End> Raw::read_to_end(std::chrono::milliseconds wait) {
  std::string bytes;
  const auto end = read_for(wait, bytes);
  return {bytes, end};
}

std::optional<Answer> Raw::next_response(std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  while (true) {
    if (!pending_.empty()) {
      http::response_parser<http::string_body> parser;
      parser.eager(true);
      boost::beast::error_code ec;
      const auto used = parser.put(boost::asio::buffer(pending_.data(), pending_.size()), ec);
      if (!ec && parser.is_done()) {
        pending_.erase(0, used);
        return parser.release();
      }
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) return std::nullopt;
    pollfd ready{fd_, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0) return std::nullopt;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return std::nullopt;
    }
    pending_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::vector<Answer> Raw::read_responses(std::size_t count, std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    std::string_view rest;
    auto answers = parse_responses(pending_, &rest);
    if (answers.size() >= count) {
      pending_ = std::string(rest);
      return answers;
    }
    if (read_for(50ms, pending_) != End::open) {
      answers = parse_responses(pending_, &rest);
      pending_ = std::string(rest);
      return answers;
    }
  }
  return parse_responses(pending_);
}

}  // namespace integration
