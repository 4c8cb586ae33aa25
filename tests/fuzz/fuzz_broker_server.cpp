// Bytes -> a real Unix-socket connection to tb::http::HttpServer, the session loop that
// token-broker runs: its own header reader (the 8 KiB limit counted over the whole header,
// empty lines before a request line, requests with bodies), keep-alive, pipelining, the request
// budget, lingering closes. The client writes the input, ends its side, and reads to the end;
// the handler answers /v1/token with a fixed token and everything else with a 404, so what is
// fuzzed is the connection handling, not the routes (fuzz_broker_http covers those).
//
// Invariants: the server always ends the connection (a hang is a libFuzzer timeout); what it
// sends is a sequence of complete HTTP/1.x responses, each with a status from 200 to 599 and a
// Content-Length that matches; no more responses than the budget of requests per connection;
// nothing follows a response that says Connection: close; and after each input the server holds
// no connection any more.

#include "broker/api.hpp"
#include "fuzz_check.hpp"
#include "tb/http/server.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

constexpr std::size_t kRequestsPerConnection = 6;

broker::Response answer(const broker::Request& request) {
  if (request.method() == http::verb::get && request.target().starts_with(broker::kTokenRoute)) {
    return broker::make_response(request, http::status::ok,
                                 R"({"access_token":"fuzz","expires_in":3600})");
  }
  return broker::make_error(request, broker::HttpError{404, "not_found", "no such route", 0s});
}

struct Harness {
  asio::io_context io;
  std::filesystem::path dir;
  std::string path;
  std::optional<tb::http::HttpServer<local>> server;

  Harness() {
    char pattern[] = "/tmp/tb-fuzz-server-XXXXXX";
    FUZZ_CHECK(::mkdtemp(pattern) != nullptr);
    dir = pattern;
    path = (dir / "s.sock").string();
    tb::http::ServerLimits limits;
    limits.header_limit = 8 * 1024;
    limits.max_requests_per_connection = kRequestsPerConnection;
    server.emplace(
        local::acceptor(io, local::endpoint(path)),
        [](const broker::Request& request) -> asio::awaitable<broker::Response> {
          co_return answer(request);
        },
        tb::http::ServerOptions{limits, broker::make_error, nullptr});
    server->start();
  }
  ~Harness() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

/// Checks `bytes` as the responses of one connection.
void check_responses(std::string_view bytes) {
  std::size_t count = 0;
  bool closed = false;
  while (!bytes.empty()) {
    FUZZ_CHECK(!closed);  // nothing after Connection: close
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    beast::error_code ec;
    const std::size_t used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    FUZZ_CHECK(!ec && parser.is_done());  // complete responses only
    const auto& response = parser.get();
    const unsigned status = response.result_int();
    FUZZ_CHECK(status >= 200 && status <= 599);
    FUZZ_CHECK(response[http::field::content_length] == std::to_string(response.body().size()));
    closed = !response.keep_alive();
    ++count;
    bytes.remove_prefix(used);
  }
  FUZZ_CHECK(count <= kRequestsPerConnection);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (fuzz::silence_logs(), true);
  (void)silenced;
  static Harness harness;

  local::socket client(harness.io);
  client.connect(local::endpoint(harness.path));
  bool written = false;
  bool ended = false;
  std::string received;
  asio::async_write(client, asio::buffer(data, size), [&](beast::error_code, std::size_t) {
    beast::error_code ignored;
    client.shutdown(local::socket::shutdown_send, ignored);
    written = true;
  });
  asio::async_read(client, asio::dynamic_buffer(received),
                   [&](beast::error_code, std::size_t) { ended = true; });
  while (!(written && ended)) harness.io.run_one();
  client.close();
  check_responses(received);
  // The session has closed its end (the client read to EOF); let it finish its clean-up.
  for (int i = 0; i < 100 && harness.server->connections() > 0; ++i) harness.io.poll();
  FUZZ_CHECK(harness.server->connections() == 0);
  return 0;
}
