#include "imds_emulator/faults.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace imds_emulator {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<std::string_view, Action>, 8> kActions{{
    {"respond", Action::respond},
    {"drop", Action::drop},
    {"hang", Action::hang},
    {"malformed", Action::malformed},
    {"missing_token", Action::missing_token},
    {"negative_expiry", Action::negative_expiry},
    {"same_token", Action::same_token},
    {"reset", Action::reset},
}};

// Reads an integer field in [min, max]; false (with `error`) when present but invalid.
bool read_int(const json& step, const std::string& where, const char* field, std::int64_t min,
              std::int64_t max, std::int64_t& out, std::string& error) {
  if (!step.contains(field)) return true;
  const json& value = step[field];
  if (!value.is_number_integer() || value.get<std::int64_t>() < min ||
      value.get<std::int64_t>() > max) {
    error = where + "." + field + " must be an integer between " + std::to_string(min) + " and " +
            std::to_string(max);
    return false;
  }
  out = value.get<std::int64_t>();
  return true;
}

std::optional<FaultStep> parse_step(const json& step, const std::string& where, bool is_then,
                                    std::string& error) {
  if (!step.is_object()) {
    error = where + " must be a JSON object";
    return std::nullopt;
  }
  for (const auto& [key, value] : step.items()) {
    static constexpr std::array<std::string_view, 6> kFields{"status",   "count",    "retry_after",
                                                             "delay_ms", "lifetime", "action"};
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end() ||
        (is_then && key == "count")) {
      error.assign(where).append(".").append(key).append(" is not a known field");
      return std::nullopt;
    }
  }
  FaultStep out;
  std::int64_t status = 200, count = 1, delay_ms = 0, lifetime = 0;
  if (!read_int(step, where, "status", 100, 599, status, error) ||
      !read_int(step, where, "count", 1, 1'000'000'000, count, error) ||
      !read_int(step, where, "delay_ms", 0, 3'600'000, delay_ms, error) ||
      !read_int(step, where, "lifetime", 1, 31'622'400, lifetime, error)) {
    return std::nullopt;
  }
  out.status = static_cast<unsigned>(status);
  out.count = static_cast<int>(count);
  out.delay = std::chrono::milliseconds(delay_ms);
  if (step.contains("lifetime")) out.lifetime = std::chrono::seconds(lifetime);
  if (step.contains("retry_after")) {
    const json& value = step["retry_after"];
    if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
        value.get_ref<const std::string&>().find_first_of("\r\n") != std::string::npos) {
      error = where + ".retry_after must be a non-empty string (seconds or an HTTP date)";
      return std::nullopt;
    }
    out.retry_after = value.get<std::string>();
  }
  if (step.contains("action")) {
    const json& value = step["action"];
    const auto* found = std::find_if(kActions.begin(), kActions.end(), [&](const auto& entry) {
      return value.is_string() && entry.first == value.get_ref<const std::string&>();
    });
    if (found == kActions.end()) {
      error = where +
              ".action must be one of respond, drop, hang, malformed, missing_token, "
              "negative_expiry, same_token, reset";
      return std::nullopt;
    }
    out.action = found->second;
  }
  return out;
}

}  // namespace

std::string_view to_string(Action action) {
  for (const auto& [name, value] : kActions) {
    if (value == action) return name;
  }
  return "unknown";
}

std::optional<FaultScript> parse_fault_script(std::string_view json_text, std::string& error) {
  const json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "body must be a JSON object";
    return std::nullopt;
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "sequence" && key != "then") {
      error = key + " is not a known field (expected sequence, then)";
      return std::nullopt;
    }
  }
  FaultScript script;
  if (doc.contains("sequence")) {
    if (!doc["sequence"].is_array()) {
      error = "sequence must be a JSON array";
      return std::nullopt;
    }
    for (std::size_t i = 0; i < doc["sequence"].size(); ++i) {
      auto step =
          parse_step(doc["sequence"][i], "sequence[" + std::to_string(i) + "]", false, error);
      if (!step) return std::nullopt;
      script.sequence.push_back(std::move(*step));
    }
  }
  if (doc.contains("then")) {
    auto then = parse_step(doc["then"], "then", true, error);
    if (!then) return std::nullopt;
    script.then = std::move(*then);
  }
  return script;
}

void FaultPlan::replace(FaultScript script) {
  script_ = std::move(script);
  index_ = 0;
  used_ = 0;
}

FaultStep FaultPlan::next() {
  if (index_ >= script_.sequence.size()) return script_.then;
  FaultStep step = script_.sequence[index_];
  if (++used_ >= step.count) {
    ++index_;
    used_ = 0;
  }
  return step;
}

}  // namespace imds_emulator
