#include "todo/odbc_text.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace todo::odbc {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// Decodes one code point starting at text[i]; advances i. nullopt on malformed input.
std::optional<char32_t> decode_utf8(std::string_view text, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) {
    ++i;
    return lead;
  }
  std::size_t length = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1Fu, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0Fu, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07u, min = 0x10000;
  } else {
    return std::nullopt;  // continuation byte as lead, or 0xF8..0xFF
  }
  if (text.size() - i < length) return std::nullopt;
  for (std::size_t k = 1; k < length; ++k) {
    const unsigned char c = byte(i + k);
    if ((c & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (c & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += length;
  return cp;
}

}  // namespace

std::optional<std::u16string> utf8_to_utf16(std::string_view text) {
  std::u16string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto cp = decode_utf8(text, i);
    if (!cp) return std::nullopt;
    if (*cp < 0x10000) {
      out.push_back(static_cast<char16_t>(*cp));
    } else {
      const char32_t v = *cp - 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (v >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (v & 0x3FF)));
    }
  }
  return out;
}

bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    if (!decode_utf8(text, i)) return false;
  }
  return true;
}

std::optional<std::string> utf16_to_utf8(std::u16string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char32_t cp = text[i];
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (i + 1 >= text.size() || text[i + 1] < 0xDC00 || text[i + 1] > 0xDFFF) {
        return std::nullopt;
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<char32_t>(text[i + 1]) - 0xDC00);
      ++i;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return std::nullopt;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

std::optional<std::vector<ConnectionAttribute>> parse_connection_string(std::string_view text) {
  std::vector<ConnectionAttribute> out;
  std::size_t i = 0;
  // Reads a key or a value up to `stop` (outside braces); unquotes a braced one.
  const auto read_part = [&](char stop, std::string& part) -> bool {
    const std::size_t start = i;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i < text.size() && text[i] == '{') {
      ++i;
      for (;;) {
        if (i >= text.size()) return false;  // unterminated
        if (text[i] == '}') {
          if (i + 1 < text.size() && text[i + 1] == '}') {
            part.push_back('}');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        part.push_back(text[i++]);
      }
      // Anything between the closing brace and the separator is ignored, as drivers do.
      while (i < text.size() && text[i] != stop && text[i] != ';') ++i;
      return true;
    }
    i = start;
    const std::size_t end = std::min(text.find_first_of(stop == '=' ? "=;" : ";", i), text.size());
    part = std::string(trim(text.substr(i, end - i)));
    i = end;
    return true;
  };
  while (i < text.size()) {
    ConnectionAttribute attribute;
    if (!read_part('=', attribute.key)) return std::nullopt;
    if (i < text.size() && text[i] == '=') {
      ++i;
      if (!read_part(';', attribute.value)) return std::nullopt;
    }
    if (i < text.size() && text[i] == ';') ++i;
    attribute.key = std::string(trim(attribute.key));
    if (!attribute.key.empty()) out.push_back(std::move(attribute));
  }
  return out;
}

std::optional<std::string> connection_value(std::string_view text, std::string_view key) {
  const auto attributes = parse_connection_string(text);
  if (!attributes) return std::nullopt;
  std::optional<std::string> found;
  for (const auto& attribute : *attributes) {
    if (iequals(attribute.key, key)) found = attribute.value;
  }
  return found;
}

std::vector<std::string> find_credential_keys(std::string_view text) {
  static constexpr std::array<std::string_view, 4> credential_keys = {
      "uid", "pwd", "authentication", "trusted_connection"};
  const auto attributes = parse_connection_string(text);
  if (!attributes) return {"<unbalanced braces>"};
  std::vector<std::string> found;
  for (const auto& attribute : *attributes) {
    const std::string key = lower(attribute.key);
    if (std::find(credential_keys.begin(), credential_keys.end(), key) != credential_keys.end()) {
      found.push_back(attribute.key);
    }
  }
  return found;
}

std::string brace_quote(std::string_view value) {
  std::string out = "{";
  for (const char c : value) {
    out.push_back(c);
    if (c == '}') out.push_back('}');
  }
  out.push_back('}');
  return out;
}

std::string with_password(std::string_view text, std::string_view token) {
  std::string out(text);
  const std::string_view trimmed = trim(out);
  if (!trimmed.empty() && trimmed.back() != ';') out.push_back(';');
  out += "PWD=";
  out += brace_quote(token);
  out.push_back(';');
  return out;
}

std::vector<std::uint8_t> access_token_buffer(std::string_view token) {
  const auto size = static_cast<std::uint32_t>(token.size() * 2);
  std::vector<std::uint8_t> out;
  out.reserve(4 + token.size() * 2);
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<std::uint8_t>((size >> shift) & 0xFFu));
  }
  for (const char c : token) {
    out.push_back(static_cast<std::uint8_t>(c));
    out.push_back(0);
  }
  return out;
}

std::optional<Dialect> detect_dialect(std::string_view connection_string) {
  const auto driver = connection_value(connection_string, "driver");
  if (!driver) return std::nullopt;
  const std::string name = lower(*driver);
  if (name.find("sql server") != std::string::npos || name.find("msodbcsql") != std::string::npos) {
    return Dialect::sqlserver;
  }
  if (name.find("postgres") != std::string::npos || name.find("psqlodbc") != std::string::npos) {
    return Dialect::postgresql;
  }
  if (name.find("sqlite") != std::string::npos) return Dialect::sqlite;
  return std::nullopt;
}

std::string redact(std::string text, const std::vector<std::string_view>& secrets) {
  for (const auto secret : secrets) {
    if (secret.empty()) continue;
    for (auto pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + 10)) {
      text.replace(pos, secret.size(), "[redacted]");
    }
  }
  return text;
}

}  // namespace todo::odbc
