// Bytes -> Beast's request parser (todo-app's limits: 8 KiB of headers, 64 KiB of body) ->
// todo::App::handle -> response, with an in-memory store that holds two items. Up to 8
// pipelined requests per input share one store. Two helpers let the fuzzer past checks it
// cannot compute: the text CSRFTOKEN in a body becomes the valid CSRF token for the request's
// todo_csrf cookie, and a header X-Fuzz-Store: <1..4> makes every store call fail with that
// StoreErrc (as a database outage would).
//
// Invariants: status 100-599; Content-Length matches the body (except for HEAD); a JSON
// response parses, and a JSON error has `error` and `error_description`; an HTML page never
// holds the text "<fuzz" (the seeds put it in descriptions: it must come out escaped).

#include "../app/memory_store.hpp"
#include "fuzz_check.hpp"
#include "todo/routes.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kMaxRequests = 8;
constexpr std::string_view kCsrfPlaceholder = "CSRFTOKEN";

const todo::Csrf& csrf() {
  static const todo::Csrf value{std::string(32, 'k')};
  return value;
}

std::string csrf_cookie(const todo::Request& request) {
  const std::string_view header = request[http::field::cookie];
  const std::string_view key = "todo_csrf=";
  const auto at = header.find(key);
  if (at == std::string_view::npos) return {};
  return std::string(header.substr(at + key.size(), 64));
}

void substitute_csrf(todo::Request& request) {
  auto& body = request.body();
  const auto at = body.find(kCsrfPlaceholder);
  if (at == std::string::npos) return;
  body.replace(at, kCsrfPlaceholder.size(), csrf().token_for(csrf_cookie(request)));
  request.prepare_payload();
}

void check(const todo::Request& request, const todo::Response& response) {
  const unsigned status = response.result_int();
  FUZZ_CHECK(status >= 100 && status <= 599);
  const bool head = request.method() == http::verb::head;
  if (head) {
    FUZZ_CHECK(response.body().empty());
    return;
  }
  if (status != 204 && status != 304) {
    FUZZ_CHECK(response[http::field::content_length] == std::to_string(response.body().size()));
  }
  const std::string_view type = response[http::field::content_type];
  if (type.starts_with("application/json") && !response.body().empty()) {
    const auto body = nlohmann::json::parse(response.body(), nullptr, false);
    FUZZ_CHECK(body.is_object() || body.is_array());
    if (status >= 400) {
      FUZZ_CHECK(body.contains("error") && body["error"].is_string());
      FUZZ_CHECK(body.contains("error_description") && body["error_description"].is_string());
    }
  }
  if (type.starts_with("text/html")) {
    FUZZ_CHECK(response.body().find("<fuzz") == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (fuzz::silence_logs(), true);
  (void)silenced;
  test_fakes::MemoryStore store;
  store.create(todo::NewTodo{"buy milk", false});
  store.create(todo::NewTodo{"<b>bold</b> & \"quoted\"", true});
  todo::App app{store, csrf()};

  boost::asio::const_buffer input(data, size);
  for (std::size_t n = 0; n < kMaxRequests && input.size() > 0; ++n) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(todo::kMaxRequestBody);
    beast::error_code ec;
    while (!parser.is_done()) {
      const std::size_t used = parser.put(input, ec);
      input += used;
      if (ec == http::error::need_more) ec = {};
      if (ec) break;
      if (used == 0) {
        // What is left cannot complete the message: the peer closed the connection.
        parser.put_eof(ec);
        if (!ec && !parser.is_done()) ec = http::error::partial_message;
        break;
      }
    }
    if (ec) return 0;  // the server answers a fixed 400/413/431 and closes
    todo::Request request = parser.release();
    substitute_csrf(request);
    store.failure.reset();
    const std::string_view fail = request["X-Fuzz-Store"];
    if (fail.size() == 1 && fail[0] >= '1' && fail[0] <= '4') {
      store.failure =
          todo::StoreError{static_cast<todo::StoreErrc>(fail[0] - '0'), "fuzz: store failure"};
    }
    const auto response = app.handle(request);
    check(request, response);
    if (!request.keep_alive()) return 0;
  }
  return 0;
}
