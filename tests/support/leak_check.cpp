#include "leak_check.hpp"

#include "jwt_peek.hpp"
#include "tb/crypto.hpp"
#include "tb/log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace test_support::leaks {
namespace {

constexpr std::size_t kMinSecret = 8;
/// A run of base64url this long, with upper case, lower case and digits, is taken for key
/// material: an ES256 signature is 86 characters, an RS256 one 342. Hex fingerprints (lower
/// case only), UUIDs and paths never qualify.
constexpr std::size_t kMinRandomRun = 86;
/// "eyJ" + at least this much, a dot, and at least this much again: a JWT's header and payload.
constexpr std::size_t kMinJwtPart = 8;
constexpr std::size_t kMaxFindingsPerFile = 10;

struct Secret {
  std::string what;
  std::string value;
};

struct Watched {
  std::string path;
  std::string label;
  int fd = -1;  ///< while the writer runs
  bool finished = false;
  std::string text;  ///< once it has finished: read then, so that its descriptor is closed
};

struct State {
  std::mutex mutex;
  std::vector<Secret> secrets;
  std::set<std::string> secret_values;
  std::map<std::string, std::string> secret_files;  // path -> what
  std::map<int, Watched> watched;
  int next_handle = 1;
  std::set<std::string> reported;
};

State& state() {
  static State instance;
  return instance;
}

void add_secret_locked(State& s, std::string_view what, std::string value) {
  if (value.size() < kMinSecret || !s.secret_values.insert(value).second) return;
  s.secrets.push_back({std::string(what), std::move(value)});
}

std::string trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return std::string(text.substr(first, text.find_last_not_of(kSpace) + 1 - first));
}

bool base64url_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

std::size_t line_of(std::string_view text, std::size_t position) {
  return 1 + static_cast<std::size_t>(std::count(
                 text.begin(), text.begin() + static_cast<std::ptrdiff_t>(position), '\n'));
}

std::string read_all(int fd) {
  std::string out;
  char buffer[65536];
  off_t offset = 0;
  for (;;) {
    const auto n = ::pread(fd, buffer, sizeof buffer, offset);
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
  return out;
}

/// Token shapes in `text`: (position, description) pairs.
std::vector<std::pair<std::size_t, std::string>> token_shapes(std::string_view text) {
  std::vector<std::pair<std::size_t, std::string>> found;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!base64url_char(text[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    bool upper = false;
    bool lower = false;
    bool digit = false;
    while (i < text.size() && base64url_char(text[i])) {
      const auto c = static_cast<unsigned char>(text[i]);
      upper = upper || std::isupper(c) != 0;
      lower = lower || std::islower(c) != 0;
      digit = digit || std::isdigit(c) != 0;
      ++i;
    }
    const std::string_view run = text.substr(start, i - start);
    // A JWT: a run holding "eyJ…" followed by ".", then another run.
    if (auto head = run.find("eyJ"); head != std::string_view::npos &&
                                     run.size() - head >= 3 + kMinJwtPart && i < text.size() &&
                                     text[i] == '.') {
      std::size_t next = i + 1;
      while (next < text.size() && base64url_char(text[next])) ++next;
      if (next - (i + 1) >= kMinJwtPart) {
        found.emplace_back(start + head, "something shaped like a JWT (eyJ….…)");
        i = next;  // one finding per token, not one per part
        continue;
      }
    }
    if (run.size() >= kMinRandomRun && upper && lower && digit) {
      found.emplace_back(start, "a random-looking base64url run of " + std::to_string(run.size()) +
                                    " characters (like a token signature)");
    }
  }
  return found;
}

std::vector<std::string> scan_locked(State& s, std::string_view text, std::string_view label) {
  std::vector<std::string> findings;
  auto add = [&](std::size_t position, const std::string& what) {
    if (findings.size() < kMaxFindingsPerFile) {
      findings.push_back(std::string(label) + " line " + std::to_string(line_of(text, position)) +
                         ": " + what);
    }
  };
  for (const auto& secret : s.secrets) {
    if (auto at = text.find(secret.value); at != std::string_view::npos) {
      add(at, secret.what + " (sha256 " + tb::log::fingerprint(secret.value) + ")");
    }
  }
  for (const auto& [position, what] : token_shapes(text)) add(position, what);
  return findings;
}

void refresh_secret_files_locked(State& s) {
  for (const auto& [path, what] : s.secret_files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::ostringstream content;
    content << in.rdbuf();
    add_secret_locked(s, what, trim(content.str()));
  }
}

/// Case-insensitive search for `key` ("pwd=") at the start of a connection-string attribute.
std::vector<std::string> connection_passwords(const std::string& text) {
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<std::string> found;
  for (const std::string key : {"pwd=", "password="}) {
    for (auto at = lower.find(key); at != std::string::npos; at = lower.find(key, at + 1)) {
      if (at > 0 && lower[at - 1] != ';' && lower[at - 1] != ' ') continue;
      std::size_t begin = at + key.size();
      std::string value;
      if (begin < text.size() && text[begin] == '{') {
        // {…} with "}}" for a literal brace.
        for (std::size_t k = begin + 1; k < text.size(); ++k) {
          if (text[k] == '}') {
            if (k + 1 < text.size() && text[k + 1] == '}') {
              value += '}';
              ++k;
              continue;
            }
            break;
          }
          value += text[k];
        }
      } else {
        value = text.substr(begin, text.find(';', begin) - begin);
      }
      found.push_back(value);
    }
  }
  return found;
}

/// Reports each finding as a failure of the test that just ended (or of the suite, for outputs
/// of processes a suite shares).
class LeakListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& /*info*/) override { report(); }
  void OnTestSuiteEnd(const ::testing::TestSuite& /*suite*/) override { report(); }

 private:
  static void report() {
    for (const auto& finding : find_leaks()) {
      ADD_FAILURE() << "a secret or token reached a process's output: " << finding;
    }
  }
};

[[maybe_unused]] const bool kListenerInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new LeakListener);
  return true;
}();

}  // namespace

void note_secret(std::string_view what, std::string value) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  add_secret_locked(s, what, std::move(value));
}

void note_token(const std::string& token) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  add_secret_locked(s, "a token", token);
  if (std::count(token.begin(), token.end(), '.') == 2) {
    add_secret_locked(s, "a token's signature", jwt_signature(token));
  }
}

void note_secret_file(std::string_view what, const std::string& path) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.secret_files.emplace(path, std::string(what));
  refresh_secret_files_locked(s);
}

void refresh_secret_files() {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  refresh_secret_files_locked(s);
}

void note_command(const std::vector<std::string>& args,
                  const std::vector<std::pair<std::string, std::string>>& env) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    for (auto& password : connection_passwords(args[i])) {
      note_secret("a connection-string password", std::move(password));
    }
    if (args[i] == "--identity-header-file" && i + 1 < args.size()) {
      note_secret_file("the identity header", args[i + 1]);
    } else if (args[i].starts_with("--identity-header-file=")) {
      note_secret_file("the identity header", args[i].substr(args[i].find('=') + 1));
    }
  }
  for (const auto& [name, value] : env) {
    if (name == "IDENTITY_HEADER") note_secret("the identity header", value);
    if (name == "IDENTITY_HEADER_FILE") note_secret_file("the identity header", value);
    if (name == "PGPASSWORD") note_secret("a database password", value);
    if (name == "AZURE_FEDERATED_TOKEN_FILE") note_secret_file("the federated token", value);
    for (auto& password : connection_passwords(value)) {
      note_secret("a connection-string password", std::move(password));
    }
  }
}

int watch_output(const std::string& path, std::string label) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
  auto& s = state();
  std::lock_guard lock(s.mutex);
  const int handle = s.next_handle++;
  s.watched.emplace(handle, Watched{path, std::move(label), fd, false, {}});
  return handle;
}

void finished(int handle) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  auto it = s.watched.find(handle);
  if (it == s.watched.end()) return;
  // A test may run many short commands: keep their output, not their descriptors.
  auto& watched = it->second;
  watched.finished = true;
  if (watched.fd >= 0) {
    watched.text = read_all(watched.fd);
    ::close(watched.fd);
    watched.fd = -1;
  }
}

std::vector<std::string> find_leaks() {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  refresh_secret_files_locked(s);
  std::vector<std::string> fresh;
  for (auto it = s.watched.begin(); it != s.watched.end();) {
    auto& watched = it->second;
    const std::string text = watched.fd >= 0 ? read_all(watched.fd) : watched.text;
    // A file watched twice (a broker restarted onto the same log) gives the same findings,
    // which are reported once.
    for (auto& finding : scan_locked(s, text, watched.label + " (" + watched.path + ")")) {
      if (s.reported.insert(finding).second) fresh.push_back(std::move(finding));
    }
    if (watched.finished) {
      it = s.watched.erase(it);
    } else {
      ++it;
    }
  }
  return fresh;
}

std::vector<std::string> scan_text(std::string_view text, std::string_view label) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  return scan_locked(s, text, label);
}

std::string canary_token() {
  // Shaped like an Entra token (a header, claims with a random uti, a 256-byte signature), but
  // signed by nobody: only its bytes matter, to check that the leak scan sees them.
  const std::string header = tb::base64url_encode(R"({"alg":"RS256","kid":"canary","typ":"JWT"})");
  const std::string payload = tb::base64url_encode(R"({"aud":"https://canary.invalid/","uti":")" +
                                                   tb::random_base64url(16) + "\"}");
  std::string token = header + "." + payload + "." + tb::random_base64url(256);
  note_token(token);
  return token;
}

}  // namespace test_support::leaks
