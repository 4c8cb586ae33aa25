#pragma once
// Structured logging shared by every component: one JSON object per line (default) or
// "msg key=value" text for people. Callers pass fields; the format is decided once at start.

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace tb::log {

enum class Format { json, text };

/// Sets up the process-wide logger on stdout. Call once, before any other thread starts.
void init(Format format, spdlog::level::level_enum level);

/// Parses "json"/"text"; returns false for anything else.
bool parse_format(std::string_view text, Format& out);
/// Parses trace|debug|info|warn|error|critical|off; returns false for anything else.
bool parse_level(std::string_view text, spdlog::level::level_enum& out);

/// Emits one event. `fields` must be a JSON object (or null); it must never hold a secret.
void emit(spdlog::level::level_enum level, std::string_view msg,
          const nlohmann::json& fields = nullptr);

inline bool enabled(spdlog::level::level_enum level) {
  return spdlog::default_logger_raw()->should_log(level);
}
inline void debug(std::string_view msg, const nlohmann::json& fields = nullptr) {
  emit(spdlog::level::debug, msg, fields);
}
inline void info(std::string_view msg, const nlohmann::json& fields = nullptr) {
  emit(spdlog::level::info, msg, fields);
}
inline void warn(std::string_view msg, const nlohmann::json& fields = nullptr) {
  emit(spdlog::level::warn, msg, fields);
}
inline void error(std::string_view msg, const nlohmann::json& fields = nullptr) {
  emit(spdlog::level::err, msg, fields);
}

/// What logs show instead of a token: the first 12 hex digits of its SHA-256.
std::string fingerprint(std::string_view secret);

}  // namespace tb::log
