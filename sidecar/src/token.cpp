#include "broker/token.hpp"

namespace broker {

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
