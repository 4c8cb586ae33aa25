// Pins: flag parsing, defaults, and one-line errors that name the flag.
#include "imds_emulator/cli.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace imds_emulator {
namespace {

CommandLine parse(std::vector<std::string_view> args) { return parse_command_line(args); }

TEST(CommandLine, DefaultsMatchTheDocumentation) {
  const CommandLine cli = parse({});
  ASSERT_TRUE(cli.options);
  EXPECT_EQ(cli.options->host, "127.0.0.1");
  EXPECT_EQ(cli.options->port, 8079);
  EXPECT_EQ(cli.options->config.lifetime, std::chrono::seconds(3600));
  ASSERT_EQ(cli.options->config.identities.size(), 1U);
  EXPECT_EQ(cli.options->config.identities[0].client_id, default_identity().client_id);
  EXPECT_EQ(cli.options->log_format, tb::log::Format::json);
  EXPECT_EQ(cli.options->config.rate_limit, 0.0);  // no throttle
  EXPECT_EQ(cli.options->config.max_concurrent, 0U);
}

TEST(CommandLine, ParsesEveryFlagInBothForms) {
  const CommandLine cli = parse({"--listen=[::1]:0",
                                 "--port-file",
                                 "/tmp/p",
                                 "--identity",
                                 "client_id=a,object_id=b",
                                 "--identity=client_id=c,mi_res_id=/x",
                                 "--lifetime",
                                 "5",
                                 "--tenant",
                                 "t",
                                 "--issuer",
                                 "https://issuer/",
                                 "--public-key-out",
                                 "/tmp/k.pem",
                                 "--log-format",
                                 "text",
                                 "--log-level",
                                 "debug",
                                 "--rate-limit",
                                 "20",
                                 "--max-concurrent=5"});
  ASSERT_TRUE(cli.options) << cli.error;
  const Options& o = *cli.options;
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 0);
  EXPECT_EQ(o.port_file, "/tmp/p");
  ASSERT_EQ(o.config.identities.size(), 2U);
  EXPECT_EQ(o.config.identities[0].object_id, "b");
  EXPECT_EQ(o.config.identities[1].mi_res_id, "/x");
  EXPECT_EQ(o.config.identities[1].object_id.size(), 36U);  // derived, UUID-shaped
  EXPECT_EQ(o.config.lifetime, std::chrono::seconds(5));
  EXPECT_EQ(o.config.tenant, "t");
  EXPECT_EQ(o.config.issuer, "https://issuer/");
  EXPECT_EQ(o.public_key_out, "/tmp/k.pem");
  EXPECT_EQ(o.log_format, tb::log::Format::text);
  EXPECT_EQ(o.log_level, spdlog::level::debug);
  EXPECT_EQ(o.config.rate_limit, 20.0);
  EXPECT_EQ(o.config.max_concurrent, 5U);
  EXPECT_TRUE(parse({"--help"}).help);
}

TEST(CommandLine, RejectsBadFlagsWithTheFlagName) {
  EXPECT_EQ(parse({"--listen", "0.0.0.0:80"}).error,
            "--listen: 0.0.0.0 is not a loopback address; add --allow-remote to listen on it");
  EXPECT_TRUE(parse({"--listen", "0.0.0.0:80", "--allow-remote"}).options);
  EXPECT_EQ(parse({"--listen", "127.0.0.1:99999"}).error,
            "--listen: port must be a number from 0 to 65535");
  EXPECT_EQ(parse({"--listen", "example.com:80"}).error,
            "--listen: \"example.com\" is not an IP address (or localhost)");
  EXPECT_EQ(parse({"--lifetime", "0"}).error,
            "--lifetime: must be a whole number of seconds from 1 to 31622400");
  EXPECT_EQ(parse({"--identity", "object_id=x"}).error, "--identity: client_id is required");
  EXPECT_EQ(parse({"--identity", "client_id=a,colour=red"}).error,
            "--identity: unknown key \"colour\" (use client_id, object_id, mi_res_id)");
  EXPECT_EQ(parse({"--identity", "client_id=a", "--identity", "client_id=a"}).error,
            "--identity: client_id a is given twice");
  EXPECT_EQ(parse({"--log-format", "xml"}).error, "--log-format: must be json or text");
  EXPECT_EQ(parse({"--tenant"}).error, "--tenant: needs a value");
  for (const char* flag : {"--rate-limit", "--max-concurrent"}) {
    for (const char* bad : {"0", "-1", "1.5", "x"}) {
      const auto cli = parse({flag, bad});
      EXPECT_FALSE(cli.options) << flag << " " << bad;
      EXPECT_TRUE(cli.error.starts_with(flag)) << cli.error;
    }
  }
  EXPECT_EQ(parse({"--bogus", "1"}).error, "--bogus: unknown flag (see --help)");
}

}  // namespace
}  // namespace imds_emulator
