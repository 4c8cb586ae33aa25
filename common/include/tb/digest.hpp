#pragma once
// SHA-256, for token fingerprints in logs and for comparing secrets in constant time.

#include <array>
#include <string_view>

namespace tb {

using Sha256 = std::array<unsigned char, 32>;

/// The SHA-256 digest of `data`.
Sha256 sha256(std::string_view data);

}  // namespace tb
