// The leak check itself: what it finds in a child's output, and what it must not mistake for a
// secret. (Each test takes the findings with find_leaks(), so the listener has none left.)
#include "leak_check.hpp"
#include "jwt_peek.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

namespace test_support {
namespace {

using namespace std::chrono_literals;

bool any_contains(const std::vector<std::string>& findings, const std::string& text) {
  return std::any_of(findings.begin(), findings.end(),
                     [&](const std::string& f) { return f.find(text) != std::string::npos; });
}

/// Runs `sh -c script` with its output watched, waits for it; returns the findings.
std::vector<std::string> findings_of(const std::string& script, const TempDir& dir,
                                     Process::Options options = {}) {
  options.output = dir.file("out.log");
  {
    Process shell("/bin/sh", {"-c", script}, options);
    EXPECT_EQ(shell.wait(10s), 0);
  }
  return leaks::find_leaks();
}

TEST(LeakCheck, FindsANotedTokenAndItsSignatureInAChildsOutputEvenAfterTheFileIsGone) {
  const auto token = leaks::canary_token();
  std::vector<std::string> findings;
  {
    TempDir dir;
    Process shell("/bin/sh", {"-c", "echo \"sig=$0\"", jwt_signature(token)},
                  {.output = dir.file("out.log")});
    ASSERT_EQ(shell.wait(10s), 0);
  }  // the temp dir, and the log in it, are gone now
  findings = leaks::find_leaks();
  ASSERT_EQ(findings.size(), 2u) << ::testing::PrintToString(findings);
  EXPECT_TRUE(any_contains(findings, "a token's signature")) << findings[0];
  EXPECT_TRUE(any_contains(findings, "random-looking base64url run of 342"));
  EXPECT_TRUE(any_contains(findings, "sh output (/tmp/tb-")) << findings[0];
  EXPECT_TRUE(any_contains(findings, " line 1: "));
  // The finding names it by fingerprint, never by value.
  for (const auto& finding : findings)
    EXPECT_EQ(finding.find(jwt_signature(token)), std::string::npos);
  // Reported once.
  EXPECT_TRUE(leaks::find_leaks().empty());
}

TEST(LeakCheck, FindsTokensNobodyNotedByTheirShape) {
  // A JWT that no test saw (as the app's tokens): header "eyJ…", a payload, a signature.
  const std::string unseen =
      "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL3guZXhhbXBsZS8ifQ.c2lnbmF0dXJl";
  auto findings = leaks::scan_text("token=" + unseen + " more", "log");
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0], "log line 1: something shaped like a JWT (eyJ….…)");
  // Half a token (as a description cut at 300 characters) still shows its head and payload.
  EXPECT_EQ(leaks::scan_text("x\n" + unseen.substr(0, 50), "log").size(), 1u);
  EXPECT_EQ(leaks::scan_text("x\n" + unseen.substr(0, 50), "log")[0].find("log line 2"), 0u);
}

TEST(LeakCheck, NotesSecretsFromCommandLinesEnvironmentsAndSecretFiles) {
  TempDir dir;
  { std::ofstream(dir.file("identity-header")) << "header-secret-1234\n"; }
  const auto findings =
      findings_of("echo \"$IDENTITY_HEADER\"; echo \"$PGPASSWORD\"; echo pw-brace-secret", dir,
                  {.env = {{"IDENTITY_HEADER", "env-header-secret"},
                           {"PGPASSWORD", "pg-password-secret"},
                           {"X", "Driver=x;Server=y;PWD={pw-brace-secret};"}}});
  EXPECT_TRUE(any_contains(findings, "the identity header")) << ::testing::PrintToString(findings);
  EXPECT_TRUE(any_contains(findings, "a database password"));
  EXPECT_TRUE(any_contains(findings, "a connection-string password"));
  leaks::note_command({"--identity-header-file", dir.file("identity-header")}, {});
  const auto more = findings_of("echo header-secret-1234", dir);
  EXPECT_TRUE(any_contains(more, "the identity header")) << ::testing::PrintToString(more);
}

TEST(LeakCheck, OrdinaryLogLinesAreNotFindings) {
  const std::string lines =
      R"({"msg":"token acquired","token_sha256":"0123456789ab","resource":"https://database.windows.net/")"
      R"(,"identity":"client_id=11111111-1111-1111-1111-111111111111","mi_res_id":"/subscriptions/)"
      R"(00000000-0000-0000-0000-000000000000/resourcegroups/dev/providers/Microsoft.ManagedIdentity/)"
      R"(userAssignedIdentities/token-broker-dev"})"
      "\n"
      "sha256=" +
      std::string(64, 'f') + " " + std::string(2000, 'a') + " " +
      "ThousandConcurrentColdRequestsMakeOneUpstreamCallAndNobodyNoticesAnythingUnusualAtAllToday\n"
      "short secret-ish values: x, abc, 1234567\n";
  EXPECT_TRUE(leaks::scan_text(lines, "log").empty())
      << ::testing::PrintToString(leaks::scan_text(lines, "log"));
}

TEST(LeakCheck, AProcessAskedToShowATokenIsNotWatched) {
  TempDir dir;
  const auto token = leaks::canary_token();
  {
    Process shell("/bin/sh", {"-c", "echo \"$0\"", token, "--show-token"},
                  {.output = dir.file("shown.log")});
    ASSERT_EQ(shell.wait(10s), 0);
  }
  EXPECT_TRUE(leaks::find_leaks().empty());
}

}  // namespace
}  // namespace test_support
