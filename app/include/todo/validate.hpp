#pragma once
// Input checks shared by the JSON API and the HTML forms.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace todo {

constexpr std::size_t kMaxDescription = 4'000;  ///< characters (Unicode code points)

/// Length in bytes of the well-formed UTF-8 sequence that `text` starts with; 0 when it starts
/// with none (or is empty).
std::size_t utf8_sequence(std::string_view text);

/// Number of code points in `text`, or nullopt when it is not valid UTF-8.
std::optional<std::size_t> utf8_length(std::string_view text);

/// What is wrong with a description, or nullopt when it can be stored.
std::optional<std::string> description_problem(std::string_view text);

/// A positive decimal id that fits in 64 bits, or nullopt.
std::optional<std::int64_t> parse_id(std::string_view text);

}  // namespace todo
