// File sinks: the --sink value, what each format writes, and FileSinks writing, skipping and
// recovering from a failed write.
#include "broker/sink.hpp"

#include "fakes.hpp"
#include "tb/crypto.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace broker {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

SinkSpec parse_ok(std::string_view text) {
  auto parsed = parse_sink(text);
  if (auto* problem = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << text << ": " << *problem;
    return {};
  }
  return std::get<SinkSpec>(parsed);
}

/// The error for `text`, which must be refused.
std::string refused(std::string_view text) {
  auto parsed = parse_sink(text);
  if (std::holds_alternative<SinkSpec>(parsed)) {
    ADD_FAILURE() << text << " was accepted";
    return {};
  }
  return std::get<std::string>(parsed);
}

TokenPtr make_token(std::string access_token, const FakeClock& clock,
                    std::chrono::seconds life = 3600s) {
  auto token = std::make_shared<Token>();
  token->upstream.access_token = std::move(access_token);
  token->upstream.expires_on = clock.unix_now() + life.count();
  token->upstream.expires_in = life;
  token->acquired_at = clock.steady_now();
  token->expires_at = clock.steady_now() + life;
  token->sha256 = tb::hex(tb::sha256(token->upstream.access_token));
  token->fingerprint = token->sha256.substr(0, 12);
  return token;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

unsigned mode_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

TEST(ParseSink, TakesEveryFieldAndHasDefaults) {
  const auto plain = parse_ok("resource=https://database.windows.net/,path=/run/s/token");
  EXPECT_EQ(plain.key.resource, "https://database.windows.net/");
  EXPECT_EQ(plain.key.identity, Identity{});
  EXPECT_EQ(plain.path, "/run/s/token");
  EXPECT_EQ(plain.format, SinkSpec::Format::raw);
  EXPECT_EQ(plain.mode, 0640U);

  const auto pg = parse_ok(
      "resource=https://ossrdbms-aad.database.windows.net,object_id=O,path=/run/s/./pgpass,"
      "format=pgpass,pghost=db.example,pgport=5432,pgdatabase=todo,pguser=app@x");
  EXPECT_EQ(pg.key.identity, (Identity{Identity::Kind::object_id, "O"}));
  EXPECT_EQ(pg.path, "/run/s/pgpass");
  EXPECT_EQ(pg.format, SinkSpec::Format::pgpass);
  EXPECT_EQ(pg.mode, 0600U);  // libpq ignores a pgpass file that group or others can read
  EXPECT_EQ(pg.pg_host, "db.example");
  EXPECT_EQ(pg.pg_port, "5432");
  EXPECT_EQ(pg.pg_database, "todo");
  EXPECT_EQ(pg.pg_user, "app@x");

  EXPECT_EQ(parse_ok("path=/a/b,resource=R,format=json,mode=600,msi_res_id=/sub/x").mode, 0600U);
  EXPECT_EQ(parse_ok("resource=R,path=/a/b,format=pgpass,mode=0400").mode, 0400U);
}

TEST(ParseSink, RefusesWhatWouldNotWorkNamingTheField) {
  EXPECT_NE(refused("path=/a/b").find("resource"), std::string::npos);
  EXPECT_NE(refused("resource=R").find("path"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=relative/file").find("path"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/dir/").find("path"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,format=yaml").find("format"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,mode=0999").find("mode"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,mode=0200").find("mode"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,format=pgpass,mode=0640").find("libpq"),
            std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,pguser=u").find("format=pgpass"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,format=pgpass,pgport=99999").find("pgport"),
            std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,format=pgpass,pguser=a b").find("pguser"),
            std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,client_id=A,object_id=B").find("identity"),
            std::string::npos);
  EXPECT_NE(refused("resource=R,resource=S,path=/a/b").find("resource"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,colour=blue").find("colour"), std::string::npos);
  EXPECT_NE(refused("resource=R,path=/a/b,json").find("json"), std::string::npos);
  EXPECT_NE(refused("resource=\x01,path=/a/b").find("resource"), std::string::npos);
}

TEST(SinkContent, RawIsTheTokenJsonTheApiBodyPgpassOneEscapedLine) {
  FakeClock clock;
  const auto token = make_token("eyJ.a:b\\c.sig", clock);
  const auto raw = parse_ok("resource=https://r/,path=/a/raw");
  EXPECT_EQ(sink_content(raw, *token, clock.steady_now()), "eyJ.a:b\\c.sig");

  const auto as_json = parse_ok("resource=https://r/,path=/a/json,format=json");
  const auto text = sink_content(as_json, *token, clock.steady_now());
  ASSERT_TRUE(text.ends_with("}\n"));
  const auto body = nlohmann::json::parse(text);
  EXPECT_EQ(body["access_token"], "eyJ.a:b\\c.sig");
  EXPECT_EQ(body["expires_on"], clock.unix_now() + 3600);
  EXPECT_EQ(body["expires_in"], 3600);
  EXPECT_EQ(body["resource"], "https://r/");
  EXPECT_EQ(body["token_type"], "Bearer");

  const auto any = parse_ok("resource=R,path=/a/pg,format=pgpass");
  EXPECT_EQ(sink_content(any, *token, clock.steady_now()), "*:*:*:*:eyJ.a\\:b\\\\c.sig\n");
  const auto named =
      parse_ok("resource=R,path=/a/pg,format=pgpass,pghost=h,pgport=5432,pgdatabase=d:b,pguser=u");
  EXPECT_EQ(sink_content(named, *token, clock.steady_now()), "h:5432:d\\:b:u:eyJ.a\\:b\\\\c.sig\n");
}

class FileSinksTest : public ::testing::Test {
 protected:
  SinkSpec spec(const std::string& name, const std::string& extra = "") {
    auto sink = parse_ok("resource=https://r/,path=" + dir_.file(name) + extra);
    return sink;
  }

  test_support::TempDir dir_;
  boost::asio::io_context io_;
  FakeClock clock_;
  Metrics metrics_;
};

TEST_F(FileSinksTest, EachNewTokenOfItsKeyIsWrittenWithTheModeAskedAndOthersAreSkipped) {
  FileSinks sinks(io_.get_executor(),
                  {spec("raw"), spec("json", ",format=json,mode=0604"),
                   parse_ok("resource=https://other/,path=" + dir_.file("other"))},
                  clock_, metrics_);
  sinks.check();
  EXPECT_FALSE(sinks.all_current());  // nothing written yet
  const TokenKey key{Identity{}, "https://r/"};
  const auto first = make_token("token-one", clock_);
  sinks.deliver(key, first);
  EXPECT_EQ(read(dir_.file("raw")), "token-one");
  EXPECT_EQ(mode_of(dir_.file("raw")), 0640U);
  EXPECT_EQ(nlohmann::json::parse(read(dir_.file("json")))["access_token"], "token-one");
  EXPECT_EQ(mode_of(dir_.file("json")), 0604U);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("other")));
  EXPECT_FALSE(sinks.all_current());  // the other sink's key has no token yet

  sinks.deliver(TokenKey{Identity{}, "https://other/"}, make_token("token-other", clock_));
  EXPECT_EQ(read(dir_.file("other")), "token-other");
  EXPECT_TRUE(sinks.all_current());
  EXPECT_NE(metrics_.render({}).find("token_broker_sink_writes_total{outcome=\"ok\"} 3"),
            std::string::npos);

  // The same token again (an upstream that answers from its own cache) is not written again.
  std::filesystem::remove(dir_.file("raw"));
  sinks.deliver(key, make_token("token-one", clock_));
  EXPECT_FALSE(std::filesystem::exists(dir_.file("raw")));
  sinks.deliver(key, make_token("token-two", clock_));
  EXPECT_EQ(read(dir_.file("raw")), "token-two");
  // Only the files: no temporaries left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()),
                          std::filesystem::directory_iterator()),
            3);
}

TEST_F(FileSinksTest, AFailedWriteIsReportedKeepsTheOldFileAndTheNextTokenIsWritten) {
  std::filesystem::create_directory(dir_.file("sub"));
  auto sink = spec("sub/token");
  FileSinks sinks(io_.get_executor(), {sink}, clock_, metrics_);
  sinks.check();
  const TokenKey key{Identity{}, "https://r/"};
  sinks.deliver(key, make_token("token-one", clock_));
  ASSERT_EQ(read(dir_.file("sub/token")), "token-one");

  // The directory goes away (an unmounted volume): the write fails, and is reported.
  std::filesystem::remove_all(dir_.file("sub"));
  sinks.deliver(key, make_token("token-two", clock_));
  auto status = sinks.status();
  ASSERT_EQ(status.size(), 1U);
  EXPECT_FALSE(status[0].current);
  EXPECT_NE(status[0].last_error.find(dir_.file("sub/token")), std::string::npos);
  EXPECT_FALSE(sinks.all_current());
  EXPECT_NE(metrics_.render({}).find("token_broker_sink_writes_total{outcome=\"failed\"} 1"),
            std::string::npos);

  // It comes back: the next token is written, and the sink is current again.
  std::filesystem::create_directory(dir_.file("sub"));
  sinks.deliver(key, make_token("token-three", clock_));
  EXPECT_EQ(read(dir_.file("sub/token")), "token-three");
  status = sinks.status();
  EXPECT_TRUE(status[0].current);
  EXPECT_TRUE(status[0].last_error.empty());
  sinks.stop();
  io_.run();  // the cancelled retry ends without writing
  EXPECT_EQ(read(dir_.file("sub/token")), "token-three");
}

TEST_F(FileSinksTest, CheckRefusesAMissingDirectoryAndRemovesStaleTemporaries) {
  FileSinks missing(io_.get_executor(), {spec("nowhere/token")}, clock_, metrics_);
  EXPECT_THROW(missing.check(), std::runtime_error);

  std::filesystem::create_directory(dir_.file("taken"));
  FileSinks on_directory(io_.get_executor(), {spec("taken")}, clock_, metrics_);
  EXPECT_THROW(on_directory.check(), std::runtime_error);

  std::ofstream(dir_.file(".token.tmp-leftover")) << "partial";
  FileSinks ok(io_.get_executor(), {spec("token")}, clock_, metrics_);
  ok.check();
  EXPECT_FALSE(std::filesystem::exists(dir_.file(".token.tmp-leftover")));
}

}  // namespace
}  // namespace broker
