#include "token_client/token_client.hpp"

#include "tb/crypto.hpp"
#include "tb/http_client.hpp"
#include "token_client/protocol.hpp"
#include "token_client/routes.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <limits>
#include <optional>

namespace token_client {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace errc = boost::system::errc;

// Token answers are a few KiB; anything near this is not token-broker.
constexpr std::uint64_t kMaxBody = std::uint64_t{64} * 1024;
// What we quote from the broker's error description: enough for any message it sends.
constexpr std::size_t kMaxQuoted = 300;
// A Retry-After beyond a day is nonsense; cap it rather than overflow.
constexpr std::int64_t kMaxRetryAfter = 86'400;
// sockaddr_un::sun_path holds the path and its terminating NUL.
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;

// The broker's text is untrusted input that ends up in the caller's logs: keep printable ASCII,
// cut what is too long.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxQuoted)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (text.size() > kMaxQuoted) out += "...";
  return out;
}

std::string encode(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

// 4000 ms -> "4", 750 ms -> "0.750": the broker reads seconds with decimals.
std::string seconds_text(std::chrono::milliseconds ms) {
  const auto count = ms.count();
  if (count % 1000 == 0) return std::to_string(count / 1000);
  return std::to_string(count / 1000) + "." + std::to_string(1000 + count % 1000).substr(1);
}

// Delta-seconds only: token-broker never sends the HTTP-date form.
std::chrono::seconds parse_retry_after(std::string_view text) {
  std::int64_t seconds = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || seconds < 0) {
    return 0s;
  }
  return std::chrono::seconds(std::min(seconds, kMaxRetryAfter));
}

Error make_error(Errc code, int status, std::string message,
                 std::chrono::seconds retry_after = 0s) {
  return Error{code, status, retry_after, std::move(message)};
}

std::string check_socket_hint(const Options& options) {
  return "check that " + options.socket_path + " is token-broker's socket";
}

// A 200 body: {"access_token","token_type","expires_on","expires_in","resource"}. Only field
// names go into messages, never values.
Result parse_token(std::string_view body, const Request& request, const Options& options) {
  const auto invalid = [&](std::string_view what) {
    return make_error(Errc::protocol_error, 200,
                      "token broker at " + options.socket_path + " answered 200 but " +
                          std::string(what) + "; " + check_socket_hint(options));
  };
  const json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_object()) return invalid("the body is not a JSON object");

  const auto access_token = parsed.find("access_token");
  if (access_token == parsed.end() || !access_token->is_string() ||
      access_token->get_ref<const std::string&>().empty()) {
    return invalid("\"access_token\" is missing or not a non-empty string");
  }
  const auto expires_on = parsed.find("expires_on");
  if (expires_on == parsed.end() || !expires_on->is_number()) {
    return invalid("\"expires_on\" is missing or not a number");
  }
  const double seconds = expires_on->get<double>();
  // Unix seconds from 0 to the year 2200: anything else is not a time a token expires at (and
  // system_clock, counting nanoseconds, overflows after 2262).
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 7'258'118'400.0) {
    return invalid("\"expires_on\" is not a Unix time in seconds");
  }

  Token token;
  token.access_token = access_token->get<std::string>();
  token.expires_on = std::chrono::system_clock::time_point(
      std::chrono::seconds(static_cast<std::int64_t>(std::floor(seconds))));
  token.token_type = "Bearer";
  if (const auto type = parsed.find("token_type"); type != parsed.end()) {
    if (!type->is_string()) return invalid("\"token_type\" is not a string");
    token.token_type = type->get<std::string>();
  }
  token.resource = request.resource;
  if (const auto resource = parsed.find("resource"); resource != parsed.end()) {
    if (!resource->is_string()) return invalid("\"resource\" is not a string");
    token.resource = resource->get<std::string>();
  }
  return token;
}

// "{error}: {description}" from a JSON error body, or a note that there was none.
std::string describe_error_body(std::string_view body) {
  const json parsed = json::parse(body, nullptr, false);
  std::string error;
  std::string description;
  if (parsed.is_object()) {
    if (auto it = parsed.find("error"); it != parsed.end() && it->is_string()) {
      error = printable(it->get_ref<const std::string&>());
    }
    if (auto it = parsed.find("error_description"); it != parsed.end() && it->is_string()) {
      description = printable(it->get_ref<const std::string&>());
    }
  }
  if (!description.empty()) return description;
  if (!error.empty()) return error;
  return body.empty() || parsed.is_object() ? "no error description"
                                            : "an error body that is not token-broker's JSON";
}

}  // namespace

std::string_view to_string(Errc code) {
  switch (code) {
    case Errc::broker_not_running:
      return "broker_not_running";
    case Errc::broker_unavailable:
      return "broker_unavailable";
    case Errc::rate_limited:
      return "rate_limited";
    case Errc::refused:
      return "refused";
    case Errc::bad_request:
      return "bad_request";
    case Errc::timeout:
      return "timeout";
    case Errc::protocol_error:
      return "protocol_error";
  }
  return "unknown";
}

bool is_transient(Errc code) {
  return code == Errc::broker_not_running || code == Errc::broker_unavailable ||
         code == Errc::timeout || code == Errc::rate_limited;
}

TokenError::TokenError(Error error) : std::runtime_error(error.message), error_(std::move(error)) {}

void throw_exception_from_error(const Error& error, const boost::source_location& location) {
  boost::throw_exception(TokenError(error), location);
}

Options Options::from_environment() {
  Options options;
  if (const char* value = std::getenv(std::string(kSocketEnv).c_str());
      value != nullptr && *value != '\0') {
    options.socket_path = value;
  }
  return options;
}

std::chrono::milliseconds broker_wait(std::chrono::milliseconds timeout) {
  const auto margin = std::min<std::chrono::milliseconds>(timeout / 5, 1000ms);
  return std::max<std::chrono::milliseconds>(timeout - margin, 1ms);
}

std::string token_target(const Request& request, std::chrono::milliseconds wait,
                         std::string_view route) {
  std::string target = std::string(route) + "?resource=" + encode(request.resource);
  if (!request.client_id.empty()) target += "&client_id=" + encode(request.client_id);
  if (!request.object_id.empty()) target += "&object_id=" + encode(request.object_id);
  if (!request.mi_res_id.empty()) target += "&mi_res_id=" + encode(request.mi_res_id);
  if (request.min_validity) {
    target += "&min_validity=" + std::to_string(request.min_validity->count());
  }
  target += "&timeout=" + seconds_text(wait);
  return target;
}

Result interpret_answer(const Answer& answer, const Request& request, const Options& options) {
  const int status = answer.status;
  if (status == 200) return parse_token(answer.body, request, options);

  const std::string what = describe_error_body(answer.body);
  const std::string resource = printable(request.resource);
  const auto retry_after = parse_retry_after(answer.retry_after);
  const std::string retry_hint = retry_after.count() > 0
                                     ? "retry in " + std::to_string(retry_after.count()) + " s"
                                     : "retry later";
  const std::string http = "HTTP " + std::to_string(status);

  if (status == 429) {
    return make_error(Errc::rate_limited, status,
                      "token broker rate-limited the request for " + resource + ": " + what + " (" +
                          retry_hint + ")",
                      retry_after);
  }
  if (status == 503) {
    return make_error(Errc::broker_unavailable, status,
                      "token broker could not get a token for " + resource + ": " + what + " (" +
                          retry_hint + ")",
                      retry_after);
  }
  if (status >= 500 && status < 600) {
    return make_error(Errc::broker_unavailable, status,
                      "token broker failed (" + http + ") for " + resource + ": " + what +
                          "; check its logs (" + retry_hint + ")",
                      retry_after);
  }
  if (status == 403) {
    return make_error(Errc::refused, status,
                      "token broker refused the request for " + resource + ": " + what +
                          "; allow this process's user (token-broker --allow-uids/--allow-gids) "
                          "or ask for an identity the broker serves");
  }
  if (status >= 400 && status < 500) {
    return make_error(Errc::bad_request, status,
                      "token broker rejected the request for " + resource + " (" + http +
                          "): " + what + "; fix the request (retrying will not help)");
  }
  return make_error(Errc::protocol_error, status,
                    "token broker at " + options.socket_path + " answered " + http +
                        ", which token-broker never sends; " + check_socket_hint(options));
}

Error transport_error(boost::system::error_code ec, const Options& options) {
  const std::string& path = options.socket_path;
  const std::string detail = ec.message();
  if (ec == boost::beast::error::timeout || ec == errc::timed_out) {
    return make_error(Errc::timeout, 0,
                      "token broker did not answer within " +
                          std::to_string(options.timeout.count()) + " ms (socket " + path +
                          "); check that token-broker is healthy (tokenctl health) or raise "
                          "the timeout");
  }
  if (ec == errc::no_such_file_or_directory || ec == errc::connection_refused ||
      ec == errc::not_a_socket || ec == errc::not_a_directory) {
    return make_error(Errc::broker_not_running, 0,
                      "token broker is not running: nothing listens on " + path + " (connect: " +
                          detail + "); start token-broker or set " + std::string(kSocketEnv));
  }
  if (ec == errc::permission_denied || ec == errc::operation_not_permitted) {
    return make_error(Errc::refused, 0,
                      "this process may not open the token broker's socket " + path +
                          " (connect: " + detail +
                          "); run it as a user or group the socket allows (token-broker "
                          "--socket-mode, the pod's fsGroup)");
  }
  if (ec == errc::resource_unavailable_try_again) {
    return make_error(Errc::broker_unavailable, 0,
                      "token broker at " + path + " is overloaded: its connection queue is full (" +
                          detail + "); retry shortly");
  }
  if (ec == boost::beast::http::error::end_of_stream || ec == errc::connection_reset ||
      ec == errc::broken_pipe || ec == boost::asio::error::eof ||
      ec == boost::beast::http::error::partial_message) {
    return make_error(Errc::broker_unavailable, 0,
                      "token broker at " + path + " closed the connection without answering (" +
                          detail + "); check its logs and retry");
  }
  if (ec == boost::beast::http::error::body_limit) {
    return make_error(Errc::protocol_error, 0,
                      "the answer from " + path + " is larger than " +
                          std::to_string(kMaxBody / 1024) + " KiB; " + check_socket_hint(options));
  }
  if (ec.category() == make_error_code(boost::beast::http::error::bad_version).category()) {
    return make_error(Errc::protocol_error, 0,
                      "the answer from " + path + " is not valid HTTP (" + detail + "); " +
                          check_socket_hint(options));
  }
  return make_error(Errc::broker_unavailable, 0,
                    "request to the token broker at " + path + " failed (" + detail +
                        "); check that token-broker is running and retry");
}

Client::Client(Options options) : options_(std::move(options)) {}

namespace {

/// Sends `http_request` (its target set) and reads the answer; `is_new`, when not null, gets a
/// forced refresh's "new".
/// What is wrong with asking at all: a socket path that cannot be one, no resource.
std::optional<Error> unusable(const Options& options_, const Request& request) {
  // Checked first because Asio throws for a path that does not fit in sockaddr_un.
  if (options_.socket_path.empty() || options_.socket_path.size() > kMaxSocketPath) {
    return make_error(Errc::bad_request, 0,
                      "token broker socket path '" + printable(options_.socket_path) +
                          "' is empty or longer than " + std::to_string(kMaxSocketPath) +
                          " bytes; set " + std::string(kSocketEnv) + " to a shorter path");
  }
  if (request.resource.empty()) {
    return make_error(Errc::bad_request, 0,
                      "no resource to ask the token broker for; name one, e.g. "
                      "https://database.windows.net/");
  }
  return std::nullopt;
}

Result exchange(const Options& options_, const Request& request, tb::http::Request http_request,
                bool* is_new) {
  if (auto problem = unusable(options_, request)) return *problem;
  http_request.headers = {{"Accept", "application/json"}, {"User-Agent", "token_client"}};
  try {
    auto response = tb::http::request_unix(options_.socket_path, std::move(http_request),
                                           {.timeout = options_.timeout, .max_body = kMaxBody});
    if (!response) return transport_error(response.error(), options_);
    const auto retry_after = response->find(boost::beast::http::field::retry_after);
    const Answer answer{.status = static_cast<int>(response->result_int()),
                        .retry_after = retry_after == response->end()
                                           ? std::string_view{}
                                           : std::string_view(retry_after->value().data(),
                                                              retry_after->value().size()),
                        .body = response->body()};
    auto result = interpret_answer(answer, request, options_);
    if (result && is_new != nullptr) {
      // A forced refresh's answer says whether the token is new; absent: take it as new.
      const json parsed = json::parse(answer.body, nullptr, false);
      const auto it = parsed.find("new");
      *is_new = it == parsed.end() || !it->is_boolean() || it->get<bool>();
    }
    return result;
  } catch (const boost::system::system_error& error) {
    return transport_error(error.code(), options_);
  } catch (const std::exception& error) {
    return make_error(
        Errc::protocol_error, 0,
        "asking the token broker at " + options_.socket_path + " failed: " + error.what());
  }
}

}  // namespace

Result Client::get_token(const Request& request) const {
  tb::http::Request http_request;
  http_request.target = token_target(request, broker_wait(options_.timeout), routes::kToken);
  return exchange(options_, request, std::move(http_request), nullptr);
}

RefreshResult Client::refresh(const Request& request, std::string_view rejected_token) const {
  tb::http::Request http_request;
  http_request.method = boost::beast::http::verb::post;
  http_request.target = token_target(request, broker_wait(options_.timeout), routes::kRefresh);
  if (!rejected_token.empty()) {
    http_request.target += "&token_sha256=" + tb::hex(tb::sha256(rejected_token));
  }
  bool is_new = true;
  auto token = exchange(options_, request, std::move(http_request), &is_new);
  if (!token) return token.error();
  return Refreshed{std::move(*token), is_new};
}

// ---- watch ----

std::optional<std::string> take_sse_event(std::string& buffer) {
  while (true) {
    // Lines end with LF (CRLF and CR are allowed by the format; the broker sends LF).
    std::size_t end = std::string::npos;
    std::size_t after = 0;
    for (const std::string_view blank : {"\n\n", "\r\n\r\n"}) {
      const auto at = buffer.find(blank);
      if (at != std::string::npos && at < end) {
        end = at;
        after = at + blank.size();
      }
    }
    if (end == std::string::npos) return std::nullopt;
    std::string block = buffer.substr(0, end);
    buffer.erase(0, after);
    // A block of comments only (": keep-alive") says nothing.
    bool only_comments = true;
    std::size_t start = 0;
    while (start <= block.size()) {
      auto line_end = block.find('\n', start);
      if (line_end == std::string::npos) line_end = block.size();
      const std::string_view line(block.data() + start, line_end - start);
      if (!line.empty() && line.front() != ':' && line != "\r") only_comments = false;
      start = line_end + 1;
    }
    if (!only_comments) return block;
  }
}

EventResult parse_watch_event(std::string_view block, const Options& options) {
  std::string_view name = "message";
  std::string data;
  std::size_t start = 0;
  while (start <= block.size()) {
    auto line_end = block.find('\n', start);
    if (line_end == std::string_view::npos) line_end = block.size();
    auto line = block.substr(start, line_end - start);
    start = line_end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == ':') continue;
    const auto colon = line.find(':');
    const auto field = line.substr(0, colon);
    auto value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "event") name = value;
    if (field == "data") {
      if (!data.empty()) data += '\n';
      data += value;
    }
  }
  const auto invalid = [&](std::string_view what) {
    return make_error(Errc::protocol_error, 200,
                      "the watch stream from " + options.socket_path + " sent " +
                          std::string(what) + "; " + check_socket_hint(options));
  };
  if (name == "shutdown") {
    return make_error(Errc::broker_unavailable, 0,
                      "token broker at " + options.socket_path +
                          " is shutting down and ended the watch; watch again (the restarted "
                          "broker answers)",
                      1s);
  }
  if (name != "token") return invalid("an event other than token or shutdown");
  const json parsed = json::parse(data, nullptr, false);
  if (!parsed.is_object()) return invalid("a token event whose data is not a JSON object");
  TokenEvent event;
  const auto version = parsed.find("version");
  const auto sha = parsed.find("token_sha256");
  const auto expires_on = parsed.find("expires_on");
  if (version == parsed.end() || !version->is_number_unsigned() || sha == parsed.end() ||
      !sha->is_string() || expires_on == parsed.end() || !expires_on->is_number_integer()) {
    return invalid("a token event without version, token_sha256 or expires_on");
  }
  const auto seconds = expires_on->get<std::int64_t>();
  if (seconds < 0 || seconds > 7'258'118'400) return invalid("an expires_on that is no time");
  event.version = version->get<std::uint64_t>();
  event.token_sha256 = sha->get<std::string>();
  event.expires_on = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
  if (const auto forced = parsed.find("forced"); forced != parsed.end() && forced->is_boolean()) {
    event.forced = forced->get<bool>();
  }
  if (const auto token = parsed.find("access_token"); token != parsed.end()) {
    if (!token->is_string()) return invalid("an access_token that is not a string");
    event.access_token = token->get<std::string>();
  }
  return event;
}

namespace {

/// poll() for `events` on `fd` until `deadline`; false when it passed.
bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd ready{fd, events, 0};
    const int n = ::poll(&ready, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60'000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // the read or write that follows says what
  }
}

boost::system::error_code last_error() { return {errno, boost::system::system_category()}; }

}  // namespace

Watch::Watch(int fd, std::string buffered, std::string socket_path)
    : fd_(fd), buffer_(std::move(buffered)), socket_path_(std::move(socket_path)) {}

Watch::Watch(Watch&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      socket_path_(std::move(other.socket_path_)),
      ended_(other.ended_) {}

Watch& Watch::operator=(Watch&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    socket_path_ = std::move(other.socket_path_);
    ended_ = other.ended_;
  }
  return *this;
}

Watch::~Watch() {
  if (fd_ >= 0) ::close(fd_);
}

EventResult Watch::next(std::chrono::milliseconds wait) {
  Options options;
  options.socket_path = socket_path_;
  options.timeout = wait;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    if (auto block = take_sse_event(buffer_)) {
      auto event = parse_watch_event(*block, options);
      if (!event) ended_ = true;
      return event;
    }
    if (ended_ || fd_ < 0) {
      return make_error(
          Errc::broker_unavailable, 0,
          "the watch stream from the token broker at " + socket_path_ + " has ended; watch again");
    }
    if (buffer_.size() > kMaxBody) {
      ended_ = true;
      return make_error(Errc::protocol_error, 200,
                        "the watch stream from " + socket_path_ + " sent an event over " +
                            std::to_string(kMaxBody / 1024) + " KiB; " +
                            check_socket_hint(options));
    }
    if (!wait_for(fd_, POLLIN, deadline)) {
      return make_error(
          Errc::timeout, 0,
          "no new token within " + std::to_string(wait.count()) + " ms (the watch goes on)");
    }
    std::array<char, 16384> chunk{};
    const auto n = ::recv(fd_, chunk.data(), chunk.size(), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      ended_ = true;
      return make_error(Errc::broker_unavailable, 0,
                        "the token broker at " + socket_path_ + " ended the watch (" +
                            (n == 0 ? std::string("closed") : last_error().message()) +
                            "); watch again, with backoff");
    }
    buffer_.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

WatchResult Client::watch(const Request& request, bool include_token) const {
  if (auto problem = unusable(options_, request)) return *problem;
  std::string target = token_target(request, broker_wait(options_.timeout), routes::kWatch);
  if (include_token) target += "&include_token=true";
  const std::string head = "GET " + target +
                           " HTTP/1.1\r\nHost: token-broker\r\nAccept: text/event-stream\r\n"
                           "User-Agent: token_client\r\n\r\n";
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return transport_error(last_error(), options_);
  Watch watch(fd, {}, options_.socket_path);  // closes the socket on every return below
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::copy(options_.socket_path.begin(), options_.socket_path.end(), address.sun_path);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
      errno != EINPROGRESS) {
    return transport_error(last_error(), options_);
  }
  for (std::size_t sent = 0; sent < head.size();) {
    if (!wait_for(fd, POLLOUT, deadline)) {
      return transport_error(make_error_code(boost::beast::error::timeout), options_);
    }
    const auto n = ::send(fd, head.data() + sent, head.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return transport_error(last_error(), options_);
    }
    sent += static_cast<std::size_t>(n);
  }
  boost::beast::http::response_parser<boost::beast::http::string_body> parser;
  parser.body_limit(kMaxBody);
  std::string bytes;
  bool eof = false;
  while (true) {
    boost::beast::error_code ec;
    // The header first (put() stops after it); a 200's body is the event stream, not parsed here.
    while (!bytes.empty() && !ec &&
           !(parser.is_header_done() && parser.get().result_int() == 200)) {
      const auto used = parser.put(boost::asio::buffer(bytes), ec);
      bytes.erase(0, used);
      if (ec == boost::beast::http::error::need_more) {
        ec = {};
        break;
      }
      if (used == 0) break;
    }
    if (!ec && eof && !parser.is_done()) parser.put_eof(ec);
    if (ec) return transport_error(ec, options_);
    if (parser.is_header_done() && parser.get().result_int() == 200) {
      const auto type = parser.get()[boost::beast::http::field::content_type];
      if (!type.starts_with("text/event-stream")) {
        return make_error(Errc::protocol_error, 200,
                          "token broker at " + options_.socket_path +
                              " answered a watch with something other than an event stream; " +
                              check_socket_hint(options_));
      }
      watch.buffer_ = std::move(bytes);  // the first event, or its beginning
      return watch;
    }
    if (parser.is_done()) {
      const auto& response = parser.get();
      const auto retry_after = response[boost::beast::http::field::retry_after];
      auto answer = interpret_answer(
          Answer{.status = static_cast<int>(response.result_int()),
                 .retry_after = std::string_view(retry_after.data(), retry_after.size()),
                 .body = response.body()},
          request, options_);
      if (!answer) return answer.error();
      return make_error(Errc::protocol_error, 0, "unexpected answer to a watch");
    }
    if (eof) return transport_error(boost::beast::http::error::partial_message, options_);
    if (!wait_for(fd, POLLIN, deadline)) {
      return transport_error(make_error_code(boost::beast::error::timeout), options_);
    }
    std::array<char, 16384> chunk{};
    const auto n = ::recv(fd, chunk.data(), chunk.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return transport_error(last_error(), options_);
    }
    if (n == 0) eof = true;
    bytes.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace token_client
