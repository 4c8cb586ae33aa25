#include "tb/log.hpp"

#include "tb/crypto.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>

namespace tb::log {
namespace {

Format g_format = Format::json;

std::string render_text(std::string_view msg, const nlohmann::json& fields) {
  std::string line(msg);
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) {
      line += ' ';
      line += key;
      line += '=';
      line += value.is_string() ? value.get_ref<const std::string&>() : value.dump();
    }
  }
  return line;
}

std::string render_json(std::string_view msg, const nlohmann::json& fields) {
  // The timestamp and level come from the spdlog pattern; this renders the rest of the object.
  // ordered_json keeps "msg" first, which is what people scan for.
  nlohmann::ordered_json body = nlohmann::ordered_json::object();
  body["msg"] = msg;
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) body[key] = value;
  }
  std::string text = body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  return text.substr(1, text.size() - 2);  // strip the braces: the pattern adds them
}

}  // namespace

void init(Format format, spdlog::level::level_enum level) {
  g_format = format;
  auto logger = spdlog::stdout_logger_mt("tb");
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  if (format == Format::json) {
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  }
  spdlog::set_default_logger(std::move(logger));
}

bool parse_format(std::string_view text, Format& out) {
  if (text == "json") {
    out = Format::json;
  } else if (text == "text") {
    out = Format::text;
  } else {
    return false;
  }
  return true;
}

bool parse_level(std::string_view text, spdlog::level::level_enum& out) {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 7> kLevels{{
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},
      {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  }};
  for (const auto& [name, level] : kLevels) {
    if (name == text) {
      out = level;
      return true;
    }
  }
  return false;
}

void emit(spdlog::level::level_enum level, std::string_view msg, const nlohmann::json& fields) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  logger->log(level, "{}",
              g_format == Format::json ? render_json(msg, fields) : render_text(msg, fields));
}

std::string fingerprint(std::string_view secret) { return tb::hex(tb::sha256(secret), 6); }

}  // namespace tb::log
