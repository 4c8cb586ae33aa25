#pragma once
// CSRF protection for the HTML forms: a random per-browser cookie, and in every form a token
// that is the HMAC-SHA256 of that cookie under a server secret. A cross-site page can make the
// browser send the cookie but can neither read it nor compute the token.

#include <string>
#include <string_view>

namespace todo {

class Csrf {
 public:
  /// `secret` must be at least 16 bytes.
  explicit Csrf(std::string secret);

  /// 32 random bytes (OpenSSL RAND_bytes), hex encoded.
  static std::string random_hex(std::size_t bytes = 32);

  /// A fresh cookie value for a browser that has none.
  std::string new_cookie() const { return random_hex(); }
  /// The token forms must carry for `cookie`.
  std::string token_for(std::string_view cookie) const;
  /// True when both are present and `token` belongs to `cookie` (constant-time comparison).
  bool verify(std::string_view cookie, std::string_view token) const;

 private:
  std::string secret_;
};

}  // namespace todo
