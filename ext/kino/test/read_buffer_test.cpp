#include "util/read_buffer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

using namespace kino;

namespace {

// A read of `data` into the buffer, as the connection does one: prepare
// room for at least `min`, copy what "arrived", commit it.
void arrive(ReadBuffer& buf, std::string_view data, size_t min) {
  std::span<char> tail = buf.prepare(min);
  ASSERT_GE(tail.size(), min);
  ASSERT_GE(tail.size(), data.size());
  std::memcpy(tail.data(), data.data(), data.size());
  buf.commit(data.size());
}

}  // namespace

TEST(ReadBuffer, StartsEmptyAndAllocatesOnTheFirstPrepare) {
  ReadBuffer buf;
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.capacity(), 0u);
  EXPECT_EQ(buf.allocations(), 0u);
  std::span<char> tail = buf.prepare(1024);
  EXPECT_EQ(tail.size(), 1024u);
  EXPECT_EQ(buf.allocations(), 1u);
  EXPECT_TRUE(buf.empty()) << "prepared room holds nothing until committed";
}

TEST(ReadBuffer, ConsumingEverythingRewindsWithoutMovingBytes) {
  ReadBuffer buf;
  arrive(buf, "GET / HTTP/1.1\r\n\r\n", 64);
  EXPECT_EQ(buf.unread(), "GET / HTTP/1.1\r\n\r\n");
  const char* front = buf.data();
  buf.consume(buf.size());
  EXPECT_TRUE(buf.empty());
  // The next read gets the whole storage again, from its front.
  std::span<char> tail = buf.prepare(64);
  EXPECT_EQ(tail.data(), front);
  EXPECT_EQ(tail.size(), 64u);
  EXPECT_EQ(buf.compactions(), 0u);
  EXPECT_EQ(buf.allocations(), 1u);
}

TEST(ReadBuffer, APartlyConsumedPrefixIsSkippedNotMoved) {
  ReadBuffer buf;
  arrive(buf, "first|second", 64);
  buf.consume(6);
  EXPECT_EQ(buf.unread(), "second");
  // Room is still at the tail: no byte moves to make it.
  arrive(buf, "+more", 16);
  EXPECT_EQ(buf.unread(), "second+more");
  EXPECT_EQ(buf.compactions(), 0u);
  EXPECT_EQ(buf.allocations(), 1u);
}

TEST(ReadBuffer, CompactsOnlyWhenTheFreeTailIsTooSmall) {
  ReadBuffer buf;
  arrive(buf, std::string(60, 'a') + "tail", 64);  // 64 of 64 bytes used
  ASSERT_EQ(buf.capacity(), 64u);
  buf.consume(60);
  // 60 bytes are free, all of them before the unread ones: they move to
  // the front, in place.
  arrive(buf, "next", 32);
  EXPECT_EQ(buf.unread(), "tailnext");
  EXPECT_EQ(buf.compactions(), 1u);
  EXPECT_EQ(buf.allocations(), 1u);
  EXPECT_EQ(buf.capacity(), 64u);
}

TEST(ReadBuffer, GrowsKeepingUnreadBytesWhenMovingIsNotEnough) {
  ReadBuffer buf;
  std::string head(48, 'h');
  arrive(buf, head, 64);
  buf.consume(8);  // 40 unread, 24 free in all: 32 cannot fit without growing
  arrive(buf, std::string(32, 'x'), 32);
  EXPECT_EQ(buf.unread(), std::string(40, 'h') + std::string(32, 'x'));
  EXPECT_EQ(buf.allocations(), 2u);
  EXPECT_EQ(buf.compactions(), 0u);
  EXPECT_GE(buf.capacity(), 72u);
}

TEST(ReadBuffer, AHeadLongerThanOneReadAccumulates) {
  // A head the parser cannot finish within one read stays unread while
  // more arrives: every piece is kept, in order.
  ReadBuffer buf;
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    std::string piece(1000, static_cast<char>('a' + i));
    arrive(buf, piece, 1024);
    expected += piece;
  }
  EXPECT_EQ(buf.unread(), expected);
  EXPECT_LE(buf.allocations(), 5u) << "storage doubles, it does not grow by each read";
}

TEST(ReadBuffer, PipelinedRequestsSplitOverReads) {
  // Two requests and the start of a third arrive in one read, the rest of
  // the third in the next: what each consume leaves is exactly the rest.
  ReadBuffer buf;
  std::string r1 = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string r2 = "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string r3 = "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n";
  arrive(buf, r1 + r2 + r3.substr(0, 10), 128);
  buf.consume(r1.size());
  EXPECT_EQ(buf.unread(), r2 + r3.substr(0, 10));
  buf.consume(r2.size());
  EXPECT_EQ(buf.unread(), r3.substr(0, 10));
  arrive(buf, r3.substr(10), 16);
  EXPECT_EQ(buf.unread(), r3);
  buf.consume(r3.size());
  EXPECT_TRUE(buf.empty());
}

TEST(ReadBuffer, ClearKeepsTheStorage) {
  ReadBuffer buf;
  arrive(buf, "dropped", 256);
  buf.clear();
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.prepare(256).size(), 256u);
  EXPECT_EQ(buf.allocations(), 1u);
}
