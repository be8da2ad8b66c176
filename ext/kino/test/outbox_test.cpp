#include "net/outbox.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>

using namespace kino;
using namespace std::chrono_literals;

namespace {

// Pushes `size` bytes as one item, promised first as a connection does.
void push(Outbox& box, size_t size, bool last = false, bool keep_alive = false, char fill = 'x') {
  box.promise(size);
  box.push(Outbox::Item{Bytes(std::string(size, fill)), last, keep_alive});
}

size_t slice_bytes(const std::vector<asio::const_buffer>& slice) {
  size_t n = 0;
  for (const auto& b : slice) n += b.size();
  return n;
}

std::string slice_text(const std::vector<asio::const_buffer>& slice) {
  std::string out;
  for (const auto& b : slice) out.append(static_cast<const char*>(b.data()), b.size());
  return out;
}

}  // namespace

TEST(Outbox, PromisedBytesCountUntilWritten) {
  Outbox box(1000);
  box.promise(10);
  EXPECT_EQ(box.pending(), 10u) << "a promise counts before the bytes reach the queue";
  box.withdraw(10);
  EXPECT_EQ(box.pending(), 0u);
  push(box, 10);
  EXPECT_FALSE(box.empty());
  EXPECT_EQ(slice_bytes(box.next_slice()), 10u);
  EXPECT_EQ(box.pending(), 10u) << "a slice under way still counts";
  box.written();
  EXPECT_EQ(box.pending(), 0u);
  EXPECT_TRUE(box.empty());
}

TEST(Outbox, ASliceGathersItemsInOrder) {
  Outbox box(1u << 20);
  box.promise(9);
  box.push(Outbox::Item{Bytes("abc"), false, false});
  box.push(Outbox::Item{Bytes("def"), false, false});
  box.push(Outbox::Item{Bytes("ghi"), true, true});
  const auto& slice = box.next_slice();
  EXPECT_EQ(slice.size(), 3u);
  EXPECT_EQ(slice_text(slice), "abcdefghi");
  Outbox::Written w = box.written();
  EXPECT_TRUE(w.response_done);
  EXPECT_TRUE(w.keep_alive);
  EXPECT_TRUE(box.empty());
}

TEST(Outbox, ALargeItemGoesOutInSlicesOf256KiB) {
  Outbox box(1u << 30);
  const size_t size = 2 * Outbox::kMaxWriteBytes + 100;
  push(box, size, true, false);
  EXPECT_EQ(slice_bytes(box.next_slice()), Outbox::kMaxWriteBytes);
  EXPECT_FALSE(box.written().response_done) << "only part of the last item was written";
  EXPECT_EQ(box.pending(), size - Outbox::kMaxWriteBytes);
  EXPECT_EQ(slice_bytes(box.next_slice()), Outbox::kMaxWriteBytes);
  EXPECT_FALSE(box.written().response_done);
  EXPECT_EQ(slice_bytes(box.next_slice()), 100u) << "the rest of the item";
  Outbox::Written w = box.written();
  EXPECT_TRUE(w.response_done);
  EXPECT_FALSE(w.keep_alive);
  EXPECT_EQ(box.pending(), 0u);
  EXPECT_TRUE(box.empty());
}

TEST(Outbox, ASliceSpansItemsUpToItsBudget) {
  Outbox box(1u << 30);
  push(box, Outbox::kMaxWriteBytes - 10, false, false, 'a');
  push(box, 30, true, true, 'b');
  const auto& first = box.next_slice();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].size(), 10u) << "the second item fills what the budget leaves";
  EXPECT_FALSE(box.written().response_done);
  std::string rest = slice_text(box.next_slice());
  EXPECT_EQ(rest, std::string(20, 'b')) << "the second item resumes where the slice ended";
  EXPECT_TRUE(box.written().response_done);
}

TEST(Outbox, ASliceTakesAtMost64Buffers) {
  Outbox box(1u << 20);
  for (int i = 0; i < 70; ++i) push(box, 1, i == 69);
  EXPECT_EQ(box.next_slice().size(), Outbox::kMaxGather);
  EXPECT_FALSE(box.written().response_done);
  EXPECT_EQ(box.next_slice().size(), 6u);
  EXPECT_TRUE(box.written().response_done);
}

TEST(Outbox, DiscardDropsWhatWasNotWrittenAndSaysIfAResponseEnded) {
  Outbox box(1u << 30);
  push(box, Outbox::kMaxWriteBytes + 50, false);
  push(box, 20, true);
  box.next_slice();
  box.written();  // the first slice of the first item went out
  EXPECT_EQ(box.pending(), 70u);
  EXPECT_TRUE(box.discard()) << "the last item ended a response";
  EXPECT_EQ(box.pending(), 0u) << "only unwritten bytes are uncounted";
  EXPECT_TRUE(box.empty());

  push(box, 5, false);
  EXPECT_FALSE(box.discard());
  EXPECT_EQ(box.pending(), 0u);
}

TEST(Outbox, HighWaterMarksTheBacklog) {
  Outbox box(100);
  push(box, 99);
  EXPECT_FALSE(box.above_high_water());
  push(box, 1);
  EXPECT_TRUE(box.above_high_water()) << "the mark itself counts as backlogged";
}

TEST(Outbox, WaitBelowHighWaterReturnsAtOnceWhenThereIsRoom) {
  Outbox box(100);
  std::atomic<bool> open{true};
  push(box, 10);
  EXPECT_TRUE(box.wait_below_high_water(std::chrono::steady_clock::now() + 10s, open));
  open = false;
  EXPECT_FALSE(box.wait_below_high_water(std::chrono::steady_clock::now() + 10s, open));
}

TEST(Outbox, WaitBelowHighWaterTimesOutWhileBacklogged) {
  Outbox box(100);
  std::atomic<bool> open{true};
  push(box, 200);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(box.wait_below_high_water(start + 50ms, open)) << "still open: the producer may go on";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
}

TEST(Outbox, AWriteWakesAWaitingProducer) {
  Outbox box(100);
  std::atomic<bool> open{true};
  push(box, 200);
  box.next_slice();
  std::atomic<bool> woke{false};
  std::thread producer([&] {
    EXPECT_TRUE(box.wait_below_high_water(std::chrono::steady_clock::now() + 10s, open));
    woke = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(woke) << "nothing was written yet";
  box.written();
  producer.join();
  EXPECT_TRUE(woke);
  EXPECT_EQ(box.pending(), 0u);
}

TEST(Outbox, NotifyWakesAProducerOnceThePeerLeft) {
  Outbox box(100);
  std::atomic<bool> open{true};
  push(box, 200);
  auto start = std::chrono::steady_clock::now();
  std::thread producer([&] { EXPECT_FALSE(box.wait_below_high_water(start + 10s, open)); });
  std::this_thread::sleep_for(20ms);
  open.store(false, std::memory_order_release);
  box.notify_writers();
  producer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "woken, not timed out";
}

TEST(Outbox, ALentItemIsWrittenFromItsOwnersBytesAndItsLoanReturned) {
  Outbox box(1u << 20);
  std::string owner(300 * 1024, 'L');
  auto lease = std::make_shared<ByteLease>(std::string_view(owner));
  box.promise(3 + owner.size());
  box.push(Outbox::Item{Bytes("hd:"), false, true});
  box.push(Outbox::Item{Bytes(), true, true, Loan(lease, lease->bytes(), nullptr)});
  EXPECT_TRUE(lease->loaned_out());
  // 256 KiB slices: the lent item spans two writes, read in place.
  const auto& first = box.next_slice();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(static_cast<const char*>(first[1].data()), owner.data()) << "no copy of the lent bytes";
  EXPECT_EQ(slice_bytes(first), Outbox::kMaxWriteBytes);
  EXPECT_FALSE(box.written().response_done);
  EXPECT_TRUE(lease->loaned_out()) << "part of it is still to write";
  EXPECT_EQ(slice_bytes(box.next_slice()), owner.size() + 3 - Outbox::kMaxWriteBytes);
  EXPECT_TRUE(box.written().response_done);
  EXPECT_FALSE(lease->loaned_out());
  EXPECT_EQ(box.pending(), 0u);
}

TEST(Outbox, DiscardingALentItemReturnsItsLoan) {
  Outbox box(1u << 20);
  std::string owner(1000, 'D');
  auto lease = std::make_shared<ByteLease>(std::string_view(owner));
  box.promise(owner.size());
  box.push(Outbox::Item{Bytes(), true, false, Loan(lease, lease->bytes(), nullptr)});
  EXPECT_TRUE(lease->loaned_out());
  EXPECT_TRUE(box.discard());
  EXPECT_FALSE(lease->loaned_out());
  EXPECT_EQ(box.pending(), 0u);
}
