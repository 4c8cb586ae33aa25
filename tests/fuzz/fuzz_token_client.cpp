// The broker's answer -> token_client::interpret_answer. The input is "STATUS\nRETRY-AFTER\n"
// then the body (a status that does not parse is 0).
//
// Invariants: a Token only for a 200, with a non-empty access_token; an Error carries the
// status, a non-empty message, a Retry-After >= 0 and the class the status belongs to; the
// message for a 200 never contains the body's access_token (it is a secret).

#include "fuzz_check.hpp"
#include "token_client/protocol.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using token_client::Errc;

Errc expected_code(int status) {
  if (status == 429) return Errc::rate_limited;  // a forced refresh too soon
  if (status >= 500 && status < 600) return Errc::broker_unavailable;
  if (status == 403) return Errc::refused;
  if (status >= 400 && status < 500) return Errc::bad_request;
  return Errc::protocol_error;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto next_line = [&input]() {
    const auto end = input.find('\n');
    const auto line = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view{} : input.substr(end + 1);
    return line;
  };
  const auto status_text = next_line();
  int status = 0;
  std::from_chars(status_text.data(), status_text.data() + status_text.size(), status);
  const auto retry_after = next_line();

  token_client::Answer answer{status, retry_after, input};
  token_client::Request request;
  request.resource = "https://database.windows.net/";
  request.client_id = "11111111-2222-3333-4444-555555555555";
  token_client::Options options;
  options.socket_path = "/tmp/tb-fuzz/broker.sock";

  const auto result = token_client::interpret_answer(answer, request, options);
  if (result) {
    FUZZ_CHECK(status == 200);
    FUZZ_CHECK(!result->access_token.empty());
    return 0;
  }
  const auto& error = result.error();
  FUZZ_CHECK(error.http_status == status);
  FUZZ_CHECK(!error.message.empty());
  FUZZ_CHECK(error.retry_after >= std::chrono::seconds(0));
  if (status == 200) {
    FUZZ_CHECK(error.code == Errc::protocol_error);
    const auto body = nlohmann::json::parse(input, nullptr, false);
    if (body.is_object() && body.contains("access_token") && body["access_token"].is_string()) {
      const auto& token = body["access_token"].get_ref<const std::string&>();
      // Differential: the message may contain the token's text only when it would contain it
      // anyway, with another token in its place (a fuzzed "token" can be a piece of the
      // message's own words, e.g. "er.sock is token-broker").
      if (token.size() >= 8 && error.message.find(token) != std::string::npos) {
        auto other_body = body;
        other_body["access_token"] = std::string(token.size(), token[0] == 'Z' ? 'Y' : 'Z');
        const std::string other_text = other_body.dump();
        const auto other = token_client::interpret_answer(
            token_client::Answer{status, retry_after, other_text}, request, options);
        FUZZ_CHECK(!other && other.error().message.find(token) != std::string::npos);
      }
    }
  } else {
    FUZZ_CHECK(error.code == expected_code(status));
  }
  return 0;
}
