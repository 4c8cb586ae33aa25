#pragma once
// Scripted faults for the token route: a sequence of steps, each applying to the next `count`
// token requests, then a `then` step that applies forever.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imds_emulator {

enum class Action {
  respond,          ///< status 200: a normal token; other statuses: a JSON error body
  drop,             ///< close the connection without a response
  hang,             ///< never answer; hold the socket until the peer or the emulator goes
  malformed,        ///< a truncated JSON body
  missing_token,    ///< valid JSON without access_token
  negative_expiry,  ///< expires_in "-5"
  same_token,       ///< the previous response for this identity + resource, verbatim
  reset,            ///< headers promising more body than is sent, then a TCP reset
};

/// The name used in fault scripts ("respond", "drop", ...).
std::string_view to_string(Action action);

struct FaultStep {
  unsigned status = 200;
  int count = 1;
  std::optional<std::string> retry_after;
  std::chrono::milliseconds delay{0};
  std::optional<std::chrono::seconds> lifetime;
  Action action = Action::respond;
};

struct FaultScript {
  std::vector<FaultStep> sequence;
  FaultStep then;  ///< default: normal behaviour
};

/// Parses a script from JSON text. On failure returns nullopt and sets `error` to a message
/// naming the bad field, e.g. "sequence[1].status must be an integer between 100 and 599".
std::optional<FaultScript> parse_fault_script(std::string_view json_text, std::string& error);

/// Hands out one step per token request, in script order.
class FaultPlan {
 public:
  void replace(FaultScript script);
  void clear() { replace({}); }
  /// The step for the next request (consumes one use of the current sequence step).
  FaultStep next();

 private:
  FaultScript script_;
  std::size_t index_ = 0;
  int used_ = 0;  // uses of script_.sequence[index_] so far
};

}  // namespace imds_emulator
