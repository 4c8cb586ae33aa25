#include "broker/token.hpp"

#include <algorithm>
#include <limits>

namespace broker {

std::int64_t ExpiryClaims::spread() const {
  std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
  std::int64_t latest = std::numeric_limits<std::int64_t>::min();
  int given = 0;
  for (const auto& said : {expires_on, expires_in, jwt_exp}) {
    if (!said) continue;
    ++given;
    earliest = std::min(earliest, *said);
    latest = std::max(latest, *said);
  }
  return given < 2 ? 0 : latest - earliest;
}

std::string to_string(const Identity& identity) {
  switch (identity.kind) {
    case Identity::Kind::client_id:
      return "client_id=" + identity.value;
    case Identity::Kind::object_id:
      return "object_id=" + identity.value;
    case Identity::Kind::mi_res_id:
      return "mi_res_id=" + identity.value;
    case Identity::Kind::none:
      break;
  }
  return "default";
}

std::optional<Identity::Kind> identity_parameter(std::string_view name) {
  if (name == "client_id") return Identity::Kind::client_id;
  if (name == "object_id" || name == "principal_id") return Identity::Kind::object_id;
  if (name == "mi_res_id" || name == "msi_res_id") return Identity::Kind::mi_res_id;
  return std::nullopt;
}

bool valid_key_text(std::string_view text) {
  return !text.empty() && text.size() <= 1024 &&
         std::all_of(text.begin(), text.end(),
                     [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
}

std::string TokenKey::flat() const {
  std::string out;
  out.reserve(resource.size() + identity.value.size() + 4);
  out += static_cast<char>('0' + static_cast<int>(identity.kind));
  out += '\n';
  out += identity.value;
  out += '\n';
  out += resource;
  return out;
}

}  // namespace broker
