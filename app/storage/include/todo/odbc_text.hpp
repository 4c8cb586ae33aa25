#pragma once
// Pure helpers behind the ODBC store: text encoding, connection-string parsing and the token
// encodings. No I/O; unit-tested byte for byte.

#include "todo/odbc_store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace todo::odbc {

/// UTF-8 -> UTF-16 (surrogate pairs for code points above U+FFFF). nullopt for invalid UTF-8:
/// bad lead or continuation bytes, truncated sequences, overlong forms, surrogates, > U+10FFFF.
std::optional<std::u16string> utf8_to_utf16(std::string_view text);
/// UTF-16 -> UTF-8. nullopt for an unpaired surrogate.
std::optional<std::string> utf16_to_utf8(std::u16string_view text);
/// True when `text` is well-formed UTF-8.
bool valid_utf8(std::string_view text);

/// One `key=value` of a connection string: key trimmed (outer braces removed), value trimmed and
/// unquoted (`{a;b}}c}` -> `a;b}c`).
struct ConnectionAttribute {
  std::string key;
  std::string value;
};

/// Splits a connection string on `;` outside braces. nullopt when a brace-quoted value is not
/// closed.
std::optional<std::vector<ConnectionAttribute>> parse_connection_string(std::string_view text);

/// The value of `key` (case-insensitive), if present; the last one wins, as in the drivers.
std::optional<std::string> connection_value(std::string_view text, std::string_view key);

/// Keys that carry credentials and must not be present with Auth::access_token: UID, PWD,
/// Authentication, Trusted_Connection (case-insensitive). Returns the keys found, as written.
/// Text inside brace-quoted values is never taken for a key. A string that does not parse
/// yields {"<unbalanced braces>"} so that the caller refuses it.
std::vector<std::string> find_credential_keys(std::string_view text);

/// `{value}` with every `}` doubled: the ODBC quoting that lets any byte through.
std::string brace_quote(std::string_view value);

/// The connection string for Auth::password: `text` + `;PWD={token}`.
std::string with_password(std::string_view text, std::string_view token);

/// The SQL_COPT_SS_ACCESS_TOKEN buffer: a little-endian uint32 byte count, then each token byte
/// followed by a zero byte (UTF-16LE of the ASCII token). "ab" -> {4,0,0,0,'a',0,'b',0}.
std::vector<std::uint8_t> access_token_buffer(std::string_view token);

/// The dialect named by the connection string's Driver= ("ODBC Driver 18 for SQL Server",
/// "PostgreSQL Unicode", "SQLite3", a .so path, ...). nullopt if it cannot be told.
std::optional<Dialect> detect_dialect(std::string_view connection_string);

/// `text` with every occurrence of each non-empty secret replaced by "[redacted]".
std::string redact(std::string text, const std::vector<std::string_view>& secrets);

}  // namespace todo::odbc
