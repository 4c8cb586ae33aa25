// The upstream's answer -> the broker: a token body from IMDS / NMI / App Service / Entra ID
// (parse_token_response), an error body (upstream_error) and a Retry-After value, each fed the
// whole input. A token that parses is then served in all three response shapes.
//
// Invariants: a parsed token has a non-empty access_token and 0 < expires_in <= 366 days; every
// served body is a JSON object that carries that same access_token; an upstream error keeps the
// status and at most 300 bytes of description; Retry-After is within [0, 1 h].

#include "broker/api.hpp"
#include "broker/imds.hpp"
#include "broker/retry.hpp"
#include "fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;

// 2026-11-29T00:00:00Z: fixed, so that a crash reproduces.
const broker::SystemTime kNow{std::chrono::seconds(1'795'910'400)};

void serve(const broker::UpstreamToken& upstream) {
  broker::Token token;
  token.upstream = upstream;
  const auto now = broker::SteadyTime{} + 1000h;
  token.acquired_at = now;
  token.expires_at = now + upstream.expires_in;
  for (auto shape : {broker::Shape::v1, broker::Shape::imds, broker::Shape::app_service}) {
    broker::TokenQuery query;
    query.key.resource = "https://database.windows.net/";
    query.shape = shape;
    const auto text = broker::token_body(token, query, now);
    const auto body = nlohmann::json::parse(text, nullptr, false);
    FUZZ_CHECK(body.is_object());
    FUZZ_CHECK(body.value("access_token", "") == upstream.access_token);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (fuzz::silence_logs(), true);
  (void)silenced;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto result = broker::parse_token_response(input, kNow);
  if (auto* token = std::get_if<broker::UpstreamToken>(&result)) {
    FUZZ_CHECK(!token->access_token.empty());
    FUZZ_CHECK(token->expires_in > 0s && token->expires_in <= 366 * 24h);
    serve(*token);
  } else {
    const auto& error = std::get<broker::FetchError>(result);
    FUZZ_CHECK(error.status == 0 && !error.error.empty() && !error.description.empty());
  }

  // The upstream's ext_expires_in must never break the JSON body (it once did: copied
  // unescaped), and an HTTP-date Retry-After past 2262 must not overflow (it once did).
  const auto retry_after = input.substr(0, 64);
  for (unsigned status : {400u, 429u, 500u, 503u}) {
    const auto error = broker::upstream_error(status, input, retry_after, kNow);
    FUZZ_CHECK(error.status == status && !error.error.empty());
    FUZZ_CHECK(error.description.size() <= 300);
    if (error.retry_after) FUZZ_CHECK(*error.retry_after >= 0ms && *error.retry_after <= 1h);
  }
  if (auto delay = broker::parse_retry_after(retry_after, kNow)) {
    FUZZ_CHECK(*delay >= 0ms && *delay <= 1h);
  }
  return 0;
}
