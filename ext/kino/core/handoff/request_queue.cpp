#include "handoff/request_queue.hpp"

#include <new>
#include <thread>

#include "handoff/response_sink.hpp"
#include "http1/responder.hpp"
#include "util/steady_clock.hpp"

namespace kino {

namespace {
// Enough wake-up permits for every consumer that may be parked when the
// queue closes; a consumer that takes one puts it back for the next.
constexpr int kWakeTokens = 64;

// The ring without a capacity; what does not fit waits in line, in order.
constexpr size_t kUnboundedSlots = size_t{1} << 12;
// A larger capacity is not all ring (16 bytes a slot): its excess waits in
// line too, still owed a place, so a huge queue_depth costs no memory
// until it is used.
constexpr size_t kMaxSlots = size_t{1} << 16;

// A request that sat in the queue at least this long is checked for a
// client that left meanwhile (a syscall); one taken sooner is not, so the
// busy path costs nothing.
constexpr int64_t kProbeAfterNs = 2'000'000;

std::atomic<int> allocations_to_fail{0};

using Permits = moodycamel::LightweightSemaphore::ssize_t;

size_t slots_for(size_t capacity) {
  size_t want = capacity > 0 ? capacity : kUnboundedSlots;
  size_t n = 2;  // the sequence scheme needs two slots at least
  while (n < want && n < kMaxSlots) n <<= 1;
  return n;
}
}  // namespace

namespace detail {
void* request_queue_malloc(std::size_t n) noexcept {
  if (allocations_to_fail.load(std::memory_order_relaxed) > 0 &&
      allocations_to_fail.fetch_sub(1, std::memory_order_relaxed) > 0)
    return nullptr;
  return NativeQueueTraits::malloc(n);
}

void request_queue_free(void* p) noexcept { NativeQueueTraits::free(p); }
}  // namespace detail

void RequestQueue::fail_allocations_for_testing(int count) noexcept {
  allocations_to_fail.store(count, std::memory_order_relaxed);
}

RequestQueue::RequestQueue(size_t capacity, int spins)
    : capacity_(capacity), slots_(slots_for(capacity)), permits_(0, spins < 0 ? kDefaultSpins : spins) {}

bool RequestQueue::ensure_ring() noexcept {
  if (ring()) return true;
  auto* fresh = static_cast<Slot*>(detail::request_queue_malloc(sizeof(Slot) * slots_));
  if (!fresh) return false;
  for (size_t i = 0; i < slots_; ++i) ::new (static_cast<void*>(fresh + i)) Slot{{i}, nullptr};
  Slot* none = nullptr;
  // Another producer may have won the race to allocate it.
  if (!ring_.compare_exchange_strong(none, fresh, std::memory_order_acq_rel, std::memory_order_acquire))
    detail::request_queue_free(fresh);
  return true;
}

bool RequestQueue::ring_push(RequestCtx* raw) {
  Slot* r = ring();
  size_t pos = enqueue_pos_.load(std::memory_order_relaxed);
  for (;;) {
    Slot& slot = r[pos & (slots_ - 1)];
    size_t seq = slot.sequence.load(std::memory_order_acquire);
    auto lag = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
    if (lag == 0) {
      if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        slot.request = raw;
        slot.sequence.store(pos + 1, std::memory_order_release);
        return true;
      }
    } else if (lag < 0) {
      return false;  // the slot still holds the request from a lap ago
    } else {
      pos = enqueue_pos_.load(std::memory_order_relaxed);
    }
  }
}

RequestCtx* RequestQueue::ring_pop() noexcept {
  Slot* r = ring();
  if (!r) return nullptr;
  size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
  for (;;) {
    Slot& slot = r[pos & (slots_ - 1)];
    size_t seq = slot.sequence.load(std::memory_order_acquire);
    auto lag = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);
    if (lag == 0) {
      if (dequeue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        RequestCtx* raw = slot.request;
        slot.sequence.store(pos + slots_, std::memory_order_release);
        return raw;
      }
    } else if (lag < 0) {
      return nullptr;  // empty, or its producer has not finished writing it
    } else {
      pos = dequeue_pos_.load(std::memory_order_relaxed);
    }
  }
}

RequestCtx* RequestQueue::take() noexcept {
  // A permit is given only after its request is in the ring, but the
  // request at the head may be another producer's, claimed and not yet
  // written: taking a later one instead would break the order, so wait
  // the few instructions it needs. After close() a permit may be a
  // wake-up with nothing behind it.
  for (;;) {
    if (requeued_count_.load(std::memory_order_acquire) > 0)
      if (RequestCtx* raw = take_requeued()) return raw;
    if (RequestCtx* raw = ring_pop()) return raw;
    if (closed() && depth() == 0) return nullptr;
    std::this_thread::yield();
  }
}

RequestCtx* RequestQueue::take_requeued() noexcept {
  std::lock_guard<std::mutex> lock(requeued_mu_);
  if (requeued_.empty()) return nullptr;
  RequestCtx* raw = requeued_.front();
  requeued_.pop_front();
  requeued_count_.fetch_sub(1, std::memory_order_relaxed);
  return raw;
}

bool RequestQueue::requeue(RequestRef* reqs, size_t count) {
  if (count == 0) return true;
  size_t placed = 0;
  {
    std::lock_guard<std::mutex> lock(requeued_mu_);
    try {
      // Front first from the last one back, so the first given is taken first.
      for (size_t i = count; i-- > 0;) {
        requeued_.push_front(reqs[i].get());
        ++placed;
      }
    } catch (const std::bad_alloc&) {
      // Undone: a partial give-back would reorder them.
      for (; placed > 0; --placed) requeued_.pop_front();
      return false;
    }
    // Counted before the permits, so a consumer holding one finds them.
    depth_.fetch_add(static_cast<long>(count), std::memory_order_relaxed);
    requeued_count_.fetch_add(count, std::memory_order_release);
  }
  for (size_t i = 0; i < count; ++i) reqs[i].detach();
  permits_.signal(static_cast<Permits>(count));
  return true;
}

bool RequestQueue::enqueue(RequestCtx* raw) {
  // Counted before it is visible, so a consumer never takes depth below 0.
  depth_.fetch_add(1, std::memory_order_relaxed);
  if (!ring_push(raw)) {
    depth_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  permits_.signal();
  return true;
}

RequestQueue::Admission RequestQueue::admit(RequestRef& req, int64_t wait_until_ms) {
  // Announced before the closed check, so a consumer that sees the queue
  // closed and empty also sees this admission under way (drained() is
  // false) or this admission sees the close and is refused: a request
  // never lands in a queue whose consumers have all left.
  admitting_.fetch_add(1, std::memory_order_seq_cst);
  struct Arrived {
    std::atomic<int>& admitting;
    ~Arrived() { admitting.fetch_sub(1, std::memory_order_release); }
  } arrived{admitting_};
  if (closed_.load(std::memory_order_seq_cst)) return Admission::Refused;
  if (!ensure_ring()) return Admission::NoMemory;
  // Nobody overtakes a request already waiting for a place.
  if (waiting() == 0 && depth() < limit() && enqueue(req.get())) {
    // The reference moves to the queue only once it is in.
    req.detach();
    return Admission::Queued;
  }
  // Below capacity (or without one) the request is owed a place, and waits
  // for it without a deadline: only what exceeds the capacity is refused.
  bool owed = capacity_ == 0 || depth() + waiting() < capacity_;
  try {
    std::lock_guard<std::mutex> lock(waiting_mu_);
    waiting_.push_back(Waiting{req.get(), owed ? INT64_MAX : wait_until_ms});
    req.detach();
    waiting_count_.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
    return Admission::NoMemory;
  }
  // A place may have freed up while we decided.
  admit_waiting();
  return owed ? Admission::Queued : Admission::Waiting;
}

void RequestQueue::admit_waiting() {
  // Pairs a consumer freeing a place (then reading waiting()) with a
  // producer joining the line (then reading the places): one of the two
  // sees the other, so no request waits in line beside a free place.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (waiting() == 0) return;
  std::lock_guard<std::mutex> lock(waiting_mu_);
  while (!waiting_.empty() && depth() < limit()) {
    // The ring is full (its last places are being freed): the next pop
    // moves it.
    if (!enqueue(waiting_.front().request)) return;
    waiting_.pop_front();
    waiting_count_.fetch_sub(1, std::memory_order_relaxed);
  }
}

std::vector<RequestRef> RequestQueue::expire_waiting(int64_t now_ms) {
  std::vector<RequestRef> expired;
  if (waiting() == 0) return expired;
  std::lock_guard<std::mutex> lock(waiting_mu_);
  // Deadlines grow with arrival, but a request owed a place has none and
  // may stand ahead of later ones that have: look along the whole line.
  size_t overdue = 0;
  for (const auto& w : waiting_) overdue += w.until_ms <= now_ms;
  if (overdue == 0) return expired;
  expired.reserve(overdue);  // may throw; nothing has moved yet
  auto kept = waiting_.begin();
  for (auto& w : waiting_) {
    if (w.until_ms <= now_ms)
      expired.emplace_back(w.request, false);
    else
      *kept++ = w;
  }
  waiting_.erase(kept, waiting_.end());
  waiting_count_.fetch_sub(overdue, std::memory_order_relaxed);
  return expired;
}

RequestRef RequestQueue::adopt(RequestCtx* raw) {
  depth_.fetch_sub(1, std::memory_order_relaxed);
  raw->mark_taken(steady_ns());
  admit_waiting();  // a place just freed up
  return RequestRef(raw, false);
}

bool RequestQueue::still_wanted(RequestRef& req) {
  bool answered = req->claimed();
  if (!answered) {
    std::shared_ptr<ResponseSink> sink = req->peer.lock();
    bool gone =
        sink && (!sink->open() || (req->taken_ns() - req->queued_ns >= kProbeAfterNs && sink->peer_gone()));
    if (!gone) return true;
    // Nobody reads this; it ends the request for the connection.
    respond_plain(*req, 503, "Service Unavailable: the client closed the connection\n", true);
  }
  skipped_.fetch_add(1, std::memory_order_relaxed);
  req.reset();
  return false;
}

RequestRef RequestQueue::take_over(RequestCtx* raw) {
  raw->mark_taken(steady_ns());
  RequestRef req(raw, false);
  if (still_wanted(req)) return req;
  return RequestRef();
}

RequestRef RequestQueue::try_pop() {
  while (permits_.tryWait()) {
    RequestCtx* raw = take();
    if (!raw) {
      permits_.signal();  // a wake-up: left for the next consumer
      return RequestRef();
    }
    RequestRef req = adopt(raw);
    if (still_wanted(req)) return req;
  }
  return RequestRef();
}

RequestRef RequestQueue::pop_for(std::chrono::microseconds timeout) {
  // Once closed, nobody parks: what is left is taken without waiting.
  if (closed()) return try_pop();
  if (!permits_.wait(timeout.count())) return RequestRef();
  RequestCtx* raw = take();
  if (!raw) {
    permits_.signal();  // woken by close(): wake the next one too
    return RequestRef();
  }
  RequestRef req = adopt(raw);
  if (still_wanted(req)) return req;
  return try_pop();
}

size_t RequestQueue::take_many(RequestRef* out, size_t permits) {
  size_t n = 0;
  for (size_t i = 0; i < permits; ++i) {
    RequestCtx* raw = take();
    if (!raw) {
      // Wake-ups from close(): left for the next consumers.
      permits_.signal(static_cast<Permits>(permits - i));
      break;
    }
    out[n] = adopt(raw);
    if (still_wanted(out[n])) ++n;
  }
  return n;
}

size_t RequestQueue::try_pop_many(RequestRef* out, size_t max) {
  for (;;) {
    auto permits = permits_.tryWaitMany(static_cast<Permits>(max));
    if (permits <= 0) return 0;
    // Only skipped ones came out: there may be more behind them.
    if (size_t n = take_many(out, static_cast<size_t>(permits)); n > 0 || (closed() && depth() == 0))
      return n;
  }
}

size_t RequestQueue::pop_many_for(RequestRef* out, size_t max, std::chrono::microseconds timeout) {
  if (closed()) return try_pop_many(out, max);
  auto permits = permits_.waitMany(static_cast<Permits>(max), timeout.count());
  if (permits <= 0) return 0;
  if (size_t n = take_many(out, static_cast<size_t>(permits)); n > 0) return n;
  return try_pop_many(out, max);
}

void RequestQueue::close() {
  if (closed_.exchange(true, std::memory_order_seq_cst)) return;
  permits_.signal(kWakeTokens);
}

RequestQueue::~RequestQueue() {
  for (RequestCtx* raw : requeued_) RequestRef(raw, false);
  for (auto& w : waiting_) RequestRef(w.request, false);
  while (RequestCtx* raw = ring_pop())
    RequestRef(raw, false);  // answers 500 through the destructor if unclaimed
  if (Slot* r = ring()) detail::request_queue_free(r);
}

}  // namespace kino
