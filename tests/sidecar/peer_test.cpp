#include "broker/peer.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

namespace broker {
namespace {

TEST(AllowList, CallerIsAllowedByUidOrByPrimaryGid) {
  const AllowList list{{1000}, {2000}};
  EXPECT_TRUE(allowed({1, 1000, 5}, list));
  EXPECT_TRUE(allowed({1, 7, 2000}, list));
  EXPECT_FALSE(allowed({1, 7, 5}, list));
  EXPECT_FALSE(allowed({1, 7, 5}, AllowList{}));
}

TEST(ParseIdList, AcceptsCommaSeparatedWholeNumbersOnly) {
  EXPECT_EQ(parse_id_list("0"), (std::vector<unsigned>{0}));
  EXPECT_EQ(parse_id_list("1000,65534"), (std::vector<unsigned>{1000, 65534}));
  for (const char* bad : {"", ",", "1,", ",1", "a", "-1", "1 ,2", "99999999999"}) {
    EXPECT_FALSE(parse_id_list(bad)) << bad;
  }
}

TEST(PeerCredentials, KernelReportsThisProcessAtTheOtherEndOfASocketPair) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto peer = peer_credentials(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->pid, ::getpid());
  EXPECT_EQ(peer->uid, ::geteuid());
  EXPECT_EQ(peer->gid, ::getegid());
}

}  // namespace
}  // namespace broker
