// tb::http::Stream: bytes in order, the end after what is queued (finish) or at once (abort), the
// bound on the backlog, and on_end called once.
#include "tb/http/stream.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;

/// Reads `stream` to its end on `io`, collecting what next() gives.
struct Reader {
  Reader(asio::io_context& io, tb::http::Stream& stream) {
    asio::co_spawn(
        io,
        [this, &stream]() -> asio::awaitable<void> {
          while (auto chunk = co_await stream.next()) chunks.push_back(*chunk);
          ended = true;
        },
        asio::detached);
  }
  std::vector<std::string> chunks;
  bool ended = false;
};

TEST(Stream, GivesWhatIsPushedInOrderAndEndsAfterItWhenFinished) {
  asio::io_context io;
  tb::http::Stream stream(io.get_executor(), 1024);
  int ends = 0;
  stream.on_end([&] { ++ends; });
  Reader reader(io, stream);
  io.poll();
  EXPECT_TRUE(reader.chunks.empty());  // waiting for bytes
  EXPECT_TRUE(stream.push("one "));
  EXPECT_TRUE(stream.push("two"));
  io.poll();
  ASSERT_EQ(reader.chunks.size(), 1U);  // what was queued meanwhile comes as one chunk
  EXPECT_EQ(reader.chunks[0], "one two");
  EXPECT_TRUE(stream.push("three"));
  stream.finish();
  EXPECT_FALSE(stream.push("after the end"));
  io.poll();
  ASSERT_EQ(reader.chunks.size(), 2U);
  EXPECT_EQ(reader.chunks[1], "three");  // finish() sends what is queued first
  EXPECT_TRUE(reader.ended);
  EXPECT_FALSE(stream.aborted());
  stream.close();
  stream.close();
  EXPECT_EQ(ends, 1);
}

TEST(Stream, ABacklogBeyondTheBoundAbortsItAndDropsWhatWaits) {
  asio::io_context io;
  tb::http::Stream stream(io.get_executor(), 8);
  bool told = false;
  stream.on_abort([&] { told = true; });
  EXPECT_TRUE(stream.push(std::string(20, 'x')));  // one event larger than the bound: taken
  EXPECT_FALSE(stream.push("y"));                  // a backlog beyond it: the reader is stuck
  EXPECT_TRUE(stream.aborted());
  EXPECT_TRUE(stream.overflowed());
  EXPECT_TRUE(told);
  Reader reader(io, stream);
  io.poll();
  EXPECT_TRUE(reader.chunks.empty());  // dropped, not sent
  EXPECT_TRUE(reader.ended);
}

TEST(Stream, AbortEndsAWaitingReaderAtOnce) {
  asio::io_context io;
  tb::http::Stream stream(io.get_executor(), 1024);
  Reader reader(io, stream);
  io.poll();
  stream.abort();
  io.poll();
  EXPECT_TRUE(reader.ended);
  EXPECT_TRUE(stream.aborted());
  EXPECT_FALSE(stream.overflowed());
}

}  // namespace
