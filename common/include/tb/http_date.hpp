#pragma once
// HTTP dates (RFC 9110 IMF-fixdate, plus the obsolete RFC 850 and asctime forms on input).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tb {

/// Parses an HTTP date; nullopt for anything that is not one.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text);

/// Formats as IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string format_http_date(std::chrono::system_clock::time_point when);

}  // namespace tb
