#include "tb/http_date.hpp"

#include <ctime>
#include <string>

namespace tb {

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
  // strptime needs a NUL-terminated string; HTTP dates are short, so copy.
  const std::string copy(text);
  static constexpr const char* kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate (the one senders must use)
      "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
      "%a %b %e %H:%M:%S %Y",       // asctime
  };
  for (const char* format : kFormats) {
    std::tm tm{};
    const char* end = strptime(copy.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') {
      const std::time_t seconds = timegm(&tm);
      // Before 1970 or after 2200 is no date a server means (and system_clock, counting
      // nanoseconds, overflows after 2262).
      if (seconds < 0 || seconds > std::time_t{7'258'118'400}) return std::nullopt;
      return std::chrono::system_clock::from_time_t(seconds);
    }
  }
  return std::nullopt;
}

std::string format_http_date(std::chrono::system_clock::time_point when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[64];
  const std::size_t size = std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buffer, size);
}

}  // namespace tb
