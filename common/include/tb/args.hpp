#pragma once
// Pieces shared by the command-line parsers of the tools.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tb::args {

/// Takes option `name`'s value from "--name=value" (`inline_value`) or from `args[next]`,
/// advancing `next`. A next argument that starts with "--" is more likely a forgotten value than
/// a value ("--name=--x" still works). Returns what is wrong, or nullopt with `out` set.
inline std::optional<std::string> take_value(std::string_view name,
                                             const std::optional<std::string>& inline_value,
                                             std::span<const std::string> args, std::size_t& next,
                                             std::string& out) {
  if (inline_value) {
    out = *inline_value;
  } else if (next < args.size() && !args[next].starts_with("--")) {
    out = args[next++];
  } else {
    return std::string(name) + " needs a value";
  }
  if (out.empty()) return std::string(name) + " needs a non-empty value";
  return std::nullopt;
}

}  // namespace tb::args
