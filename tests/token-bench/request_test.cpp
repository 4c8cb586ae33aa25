// Pins the exact bytes token-bench writes for every request.
#include "token_bench/request.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace token_bench {
namespace {

TEST(TokenBenchRequest, DefaultRequestIsAMinimalKeepAliveGet) {
  EXPECT_EQ(serialise_request("/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F",
                              "localhost", {}),
            "GET /v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F HTTP/1.1\r\n"
            "Host: localhost\r\n"
            "\r\n");
}

TEST(TokenBenchRequest, HeadersFollowHostInTheGivenOrder) {
  const std::vector<Header> headers{{"Metadata", "true"}, {"X-Trace", "a b"}};
  EXPECT_EQ(serialise_request("/metadata/identity/oauth2/token", "localhost", headers),
            "GET /metadata/identity/oauth2/token HTTP/1.1\r\n"
            "Host: localhost\r\n"
            "Metadata: true\r\n"
            "X-Trace: a b\r\n"
            "\r\n");
}

TEST(TokenBenchRequest, AHostHeaderReplacesTheDefaultWhateverItsCase) {
  const std::vector<Header> headers{{"hOsT", "broker.local"}};
  EXPECT_EQ(serialise_request("/healthz", "localhost", headers),
            "GET /healthz HTTP/1.1\r\nhOsT: broker.local\r\n\r\n");
}

TEST(TokenBenchRequest, DefaultHostNamesTheTcpServer) {
  EXPECT_EQ(default_host(Target{UnixTarget{"/run/b.sock"}}), "localhost");
  EXPECT_EQ(default_host(Target{TcpTarget{"127.0.0.1", "8081"}}), "127.0.0.1:8081");
  EXPECT_EQ(default_host(Target{TcpTarget{"::1", "8081"}}), "[::1]:8081");
}

}  // namespace
}  // namespace token_bench
