#pragma once
// The pure parts of token_client: the request target, and the broker's answer (or a transport
// failure) turned into a Token or an Error. No I/O here; public so that tests can pin them.

#include "token_client/routes.hpp"
#include "token_client/token_client.hpp"

#include <boost/system/error_code.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace token_client {

/// How long the broker is asked to wait for its upstream: Options::timeout less a margin for
/// the round trip (a fifth of it, at most 1 s), at least 1 ms.
std::chrono::milliseconds broker_wait(std::chrono::milliseconds timeout);

/// "/v1/token?resource=R[&client_id=…][&object_id=…][&mi_res_id=…][&min_validity=S]&timeout=T",
/// every value percent-encoded (only unreserved characters stay as they are); T in seconds.
/// `route`: routes::kRefresh for a forced refresh (the same parameters).
std::string token_target(const Request& request, std::chrono::milliseconds wait,
                         std::string_view route = routes::kToken);

/// The part of the broker's HTTP answer that matters here.
struct Answer {
  int status = 0;
  std::string_view retry_after;  ///< the Retry-After header ("" if none)
  std::string_view body;
};

/// 200 with a valid body -> Token; anything else -> Error (the body of a 200 is never quoted in
/// a message: it may hold a token).
Result interpret_answer(const Answer& answer, const Request& request, const Options& options);

/// The next complete Server-Sent Events block at the front of `buffer` (its lines up to an empty
/// line), taken off it; blocks of comments alone (keep-alives) are dropped. nullopt while no
/// complete block is there.
std::optional<std::string> take_sse_event(std::string& buffer);

/// A watch event block: `event: token` → TokenEvent; `event: shutdown` → broker_unavailable (the
/// broker is stopping: watch again); anything else → protocol_error. Values never go into the
/// message (the data may hold a token).
EventResult parse_watch_event(std::string_view block, const Options& options);

/// A request that got no complete HTTP answer (connect, write, read, deadline) -> Error.
Error transport_error(boost::system::error_code ec, const Options& options);

}  // namespace token_client
