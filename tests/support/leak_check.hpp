#pragma once
// "No secrets leak": every output file of every child process a test starts (Process registers
// it) and every log a test names is checked, when each test ends, for
//   - every secret the test process has learnt of: tokens any client got (and their signature
//     part), identity-header values, connection-string passwords, PGPASSWORD values; and
//   - anything shaped like a token, whoever it was issued to (the app's and the broker's own
//     tokens never pass through the test): a JWT's "eyJ….…" head, or a long random-looking
//     base64url run such as an RS256 signature.
// A GoogleTest listener, installed by linking this file (which Process does), turns each finding
// into a failure of the test that just ended. Findings name the file, the line and a fingerprint,
// never the secret.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test_support::leaks {

/// A secret whose exact text must appear in no watched output. Values under 8 characters are
/// ignored (they would match by chance). `what` names it in findings ("token", "password", …).
void note_secret(std::string_view what, std::string value);

/// A token and, when it is a JWT, its signature (the third dot-separated part) on its own.
void note_token(const std::string& token);

/// A file that holds a secret, perhaps only later (the broker generates its identity header at
/// start): read whenever secrets are refreshed, while it exists.
void note_secret_file(std::string_view what, const std::string& path);

/// Reads the secret files again (Process calls it when a child exits: its temp dir, and with it
/// the files, may be gone by the time the test ends).
void refresh_secret_files();

/// The secrets a child's command line and environment carry: PWD=/Password= in connection
/// strings, IDENTITY_HEADER and PGPASSWORD values, the files --identity-header-file,
/// IDENTITY_HEADER_FILE and AZURE_FEDERATED_TOKEN_FILE name.
void note_command(const std::vector<std::string>& args,
                  const std::vector<std::pair<std::string, std::string>>& env);

/// Watches `path` (created when absent) under `label`: it is kept open while its writer runs, so
/// it can be checked even after the test removed it. Returns a handle for `finished`.
int watch_output(const std::string& path, std::string label);

/// The watched file's writer is done: its content is read now (and the file closed), checked
/// when the test ends, then forgotten.
void finished(int handle);

/// Checks every watched output against every secret and every token shape; returns one line
/// per new finding (each reported once).
std::vector<std::string> find_leaks();

/// The checks of find_leaks on one text (for tests of tests, and for HTTP bodies): findings
/// labelled `label`.
std::vector<std::string> scan_text(std::string_view text, std::string_view label);

/// A JWT-shaped string with a random 256-byte "signature" that no issuer made: a canary for
/// tests that feed token-like strings to the programs. Noted as a token.
std::string canary_token();

}  // namespace test_support::leaks
