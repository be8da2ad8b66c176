#include "control/process_board.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>

namespace kino {

namespace {

// A row's contents as plain data: what a publish stores word by word and
// a read copies back. Only the first `slot_count` slots are stored.
struct RowImage {
  int64_t pid;
  uint64_t generation;
  int64_t started_unix_ms;
  uint32_t state;
  uint32_t slot_count;
  char mode[16];
  int64_t workers, threads, workers_up;
  uint64_t respawns, quarantined, queued;
  int64_t in_flight;
  uint64_t served, rejected, timeouts, parse_errors, connections_accepted, requests_received;
  int64_t connections_open;
  uint64_t log_dropped, logger_dropped, spooled_bytes;
  int64_t spool_files;
  uint64_t wait_cumulative[QueueWaitHistogram::kBuckets];
  uint64_t wait_count;
  double wait_sum;
  struct Slot {
    uint64_t served;
    int64_t busy_ms;
    uint32_t worker;
    uint32_t in_flight;
  } slots[ProcessBoard::kMaxSlots];
};

static_assert(std::is_trivially_copyable_v<RowImage>);
static_assert(sizeof(RowImage) % sizeof(uint64_t) == 0);
static_assert(sizeof(RowImage::Slot) % sizeof(uint64_t) == 0);
// Shared between processes, the words must be atomic without a lock
// (a lock-based atomic's lock would live in one process only).
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

constexpr size_t kWords = sizeof(RowImage) / sizeof(uint64_t);
constexpr size_t kFixedWords = offsetof(RowImage, slots) / sizeof(uint64_t);
constexpr size_t kSlotWords = sizeof(RowImage::Slot) / sizeof(uint64_t);

// How long a reader retries a row that keeps changing under it, and how
// long reset() or claim() wait for a writer before deciding it is dead.
constexpr int kReadAttempts = 4096;
constexpr int kTakeoverAttempts = 20000;

size_t words_of(uint32_t slot_count) noexcept {
  return kFixedWords + std::min<size_t>(slot_count, ProcessBoard::kMaxSlots) * kSlotWords;
}

int64_t unix_ms() noexcept {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

bool alive(int64_t pid) noexcept {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH);
}

}  // namespace

struct ProcessBoard::Header {
  std::atomic<uint32_t> group{static_cast<uint32_t>(GroupState::Booting)};
  uint64_t rows = 0;
};

// A cache line of its own for the sequence, so readers spinning on one row
// do not slow the writer of the next.
struct alignas(64) ProcessBoard::Row {
  std::atomic<uint64_t> seq{0};  // odd while a write is under way
  std::array<std::atomic<uint64_t>, kWords> words{};
};

namespace {

// Row access under the seqlock. The writer side is entered by a CAS of
// the sequence from even to odd, so two writers (a zombie and the new
// owner) never interleave their words.
class RowWriter {
 public:
  explicit RowWriter(ProcessBoard::Row& row) : row_(row) {}

  // Takes the row if no write is under way.
  bool try_begin() noexcept {
    uint64_t s = row_.seq.load(std::memory_order_relaxed);
    if (s & 1) return false;
    if (!row_.seq.compare_exchange_strong(s, s + 1, std::memory_order_acquire, std::memory_order_relaxed))
      return false;
    begun_ = s + 1;
    std::atomic_thread_fence(std::memory_order_release);  // the odd sequence before any word
    return true;
  }

  // Takes the row, waiting a while for a writer under way; a writer that
  // does not finish by then died in the middle, and its half row is ours.
  void begin() noexcept {
    for (int i = 0; i < kTakeoverAttempts; ++i) {
      if (try_begin()) return;
      if (i % 64 == 63) sched_yield();
    }
    uint64_t s = row_.seq.load(std::memory_order_relaxed);
    if (!(s & 1)) {
      s += 1;
      row_.seq.store(s, std::memory_order_relaxed);
    }
    begun_ = s;
    std::atomic_thread_fence(std::memory_order_release);
  }

  uint64_t word(size_t i) const noexcept { return row_.words[i].load(std::memory_order_relaxed); }

  void write(const RowImage& image, size_t words) noexcept {
    const char* bytes = reinterpret_cast<const char*>(&image);
    for (size_t i = 0; i < words; ++i) {
      uint64_t w;
      std::memcpy(&w, bytes + i * sizeof w, sizeof w);
      row_.words[i].store(w, std::memory_order_relaxed);
    }
  }

  void end() noexcept { row_.seq.store(begun_ + 1, std::memory_order_release); }

 private:
  ProcessBoard::Row& row_;
  uint64_t begun_ = 0;
};

constexpr size_t kGenerationWord = offsetof(RowImage, generation) / sizeof(uint64_t);

// A whole row read under the seqlock into `image`; false when it kept
// changing (or stayed half-written) through every attempt.
bool read_row(const ProcessBoard::Row& row, RowImage& image) noexcept {
  char* bytes = reinterpret_cast<char*>(&image);
  auto copy = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      uint64_t w = row.words[i].load(std::memory_order_relaxed);
      std::memcpy(bytes + i * sizeof w, &w, sizeof w);
    }
  };
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    if (attempt % 64 == 63) sched_yield();
    uint64_t before = row.seq.load(std::memory_order_acquire);
    if (before & 1) continue;
    copy(0, kFixedWords);
    // A torn count is bounded here, and the check below rejects it.
    image.slot_count = static_cast<uint32_t>(std::min<size_t>(image.slot_count, ProcessBoard::kMaxSlots));
    copy(kFixedWords, words_of(image.slot_count));
    std::atomic_thread_fence(std::memory_order_acquire);  // every word before the second look
    if (row.seq.load(std::memory_order_relaxed) == before) return true;
  }
  return false;
}

void fill_image(RowImage& image, const ServerStats& s) noexcept {
  std::strncpy(image.mode, s.mode.c_str(), sizeof image.mode - 1);
  image.workers = s.workers;
  image.threads = s.threads;
  image.workers_up = s.workers_up;
  image.respawns = s.respawns;
  image.quarantined = s.quarantined;
  image.queued = s.queued;
  image.in_flight = s.in_flight;
  image.served = s.served;
  image.rejected = s.rejected;
  image.timeouts = s.timeouts;
  image.parse_errors = s.parse_errors;
  image.connections_accepted = s.connections_accepted;
  image.requests_received = s.requests_received;
  image.connections_open = s.connections_open;
  image.log_dropped = s.log_dropped;
  image.logger_dropped = s.logger_dropped;
  image.spooled_bytes = s.spooled_bytes;
  image.spool_files = s.spool_files;
  for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i)
    image.wait_cumulative[i] = s.queue_wait.cumulative[i];
  image.wait_count = s.queue_wait.count;
  image.wait_sum = s.queue_wait.sum_seconds;
  size_t n = std::min(s.slots.size(), ProcessBoard::kMaxSlots);
  image.slot_count = static_cast<uint32_t>(n);
  for (size_t i = 0; i < n; ++i) {
    const SlotStats& slot = s.slots[i];
    image.slots[i] = {slot.served, slot.busy_ms, static_cast<uint32_t>(slot.worker),
                      slot.in_flight ? 1u : 0u};
  }
}

ServerStats stats_of(const RowImage& image) {
  ServerStats s;
  s.mode.assign(image.mode, strnlen(image.mode, sizeof image.mode));
  s.workers = image.workers;
  s.threads = image.threads;
  s.workers_up = image.workers_up;
  s.respawns = image.respawns;
  s.quarantined = image.quarantined;
  s.queued = image.queued;
  s.in_flight = image.in_flight;
  s.served = image.served;
  s.rejected = image.rejected;
  s.timeouts = image.timeouts;
  s.parse_errors = image.parse_errors;
  s.connections_accepted = image.connections_accepted;
  s.requests_received = image.requests_received;
  s.connections_open = image.connections_open;
  s.log_dropped = image.log_dropped;
  s.logger_dropped = image.logger_dropped;
  s.spooled_bytes = image.spooled_bytes;
  s.spool_files = image.spool_files;
  for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i)
    s.queue_wait.cumulative[i] = image.wait_cumulative[i];
  s.queue_wait.count = image.wait_count;
  s.queue_wait.sum_seconds = image.wait_sum;
  s.slots.reserve(image.slot_count);
  for (size_t i = 0; i < image.slot_count; ++i) {
    const RowImage::Slot& slot = image.slots[i];
    s.slots.push_back(SlotStats{i, slot.worker, slot.served, slot.in_flight != 0, slot.busy_ms});
  }
  return s;
}

void add_to(ServerStats& total, const ServerStats& s) noexcept {
  total.workers_up += s.workers_up;
  total.respawns += s.respawns;
  total.quarantined += s.quarantined;
  total.queued += s.queued;
  total.in_flight += s.in_flight;
  total.served += s.served;
  total.rejected += s.rejected;
  total.timeouts += s.timeouts;
  total.parse_errors += s.parse_errors;
  total.connections_accepted += s.connections_accepted;
  total.requests_received += s.requests_received;
  total.connections_open += s.connections_open;
  total.log_dropped += s.log_dropped;
  total.logger_dropped += s.logger_dropped;
  total.spooled_bytes += s.spooled_bytes;
  total.spool_files += s.spool_files;
  for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i)
    total.queue_wait.cumulative[i] += s.queue_wait.cumulative[i];
  total.queue_wait.count += s.queue_wait.count;
  total.queue_wait.sum_seconds += s.queue_wait.sum_seconds;
}

}  // namespace

const char* process_state_name(ProcessState state) noexcept {
  switch (state) {
    case ProcessState::Empty:
      return "empty";
    case ProcessState::Booting:
      return "booting";
    case ProcessState::Ready:
      return "ready";
    case ProcessState::Draining:
      return "draining";
    case ProcessState::Stopped:
      return "stopped";
  }
  return "empty";
}

const char* group_state_name(GroupState state) noexcept {
  switch (state) {
    case GroupState::Booting:
      return "booting";
    case GroupState::Ready:
      return "ready";
    case GroupState::Draining:
      return "draining";
  }
  return "booting";
}

ProcessBoard::ProcessBoard(size_t processes) : rows_(processes) {
  if (processes == 0 || processes > kMaxProcesses)
    throw std::invalid_argument("a process board holds 1 to " + std::to_string(kMaxProcesses) + " processes");
  size_t header = (sizeof(Header) + alignof(Row) - 1) / alignof(Row) * alignof(Row);
  bytes_ = header + processes * sizeof(Row);
  memory_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory_ == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), "mmap of the process board");
  // The pages come zeroed; the objects are made here, once, before any
  // fork, and every process then uses the same ones.
  header_ = new (memory_) Header();
  header_->rows = processes;
  rows_begin_ = reinterpret_cast<Row*>(static_cast<char*>(memory_) + header);
  for (size_t i = 0; i < processes; ++i) new (rows_begin_ + i) Row();
}

ProcessBoard::~ProcessBoard() { ::munmap(memory_, bytes_); }

GroupState ProcessBoard::group_state() const noexcept {
  return static_cast<GroupState>(header_->group.load(std::memory_order_acquire));
}

void ProcessBoard::set_group_state(GroupState state) noexcept {
  header_->group.store(static_cast<uint32_t>(state), std::memory_order_release);
}

uint64_t ProcessBoard::claim(size_t index, pid_t pid) {
  if (index >= rows_)
    throw std::out_of_range("process index " + std::to_string(index) + " is past the board");
  RowWriter writer(rows_begin_[index]);
  writer.begin();
  RowImage image{};
  // A new generation: any earlier holder of the row stops publishing.
  image.generation = writer.word(kGenerationWord) + 1;
  image.pid = pid;
  image.started_unix_ms = unix_ms();
  image.state = static_cast<uint32_t>(ProcessState::Booting);
  writer.write(image, kWords);
  writer.end();
  return image.generation;
}

bool ProcessBoard::publish(size_t index, uint64_t generation, ProcessState state,
                           const ServerStats& stats) noexcept {
  if (index >= rows_) return false;
  RowWriter writer(rows_begin_[index]);
  if (!writer.try_begin()) return false;
  if (writer.word(kGenerationWord) != generation) {
    writer.end();  // reset or claimed again: no longer ours
    return false;
  }
  RowImage image;
  // The pid and start stay as claim() wrote them.
  std::memset(&image, 0, sizeof image);
  image.pid = static_cast<int64_t>(writer.word(offsetof(RowImage, pid) / sizeof(uint64_t)));
  image.started_unix_ms =
      static_cast<int64_t>(writer.word(offsetof(RowImage, started_unix_ms) / sizeof(uint64_t)));
  image.generation = generation;
  image.state = static_cast<uint32_t>(state);
  fill_image(image, stats);
  writer.write(image, words_of(image.slot_count));
  writer.end();
  return true;
}

void ProcessBoard::reset(size_t index) {
  if (index >= rows_)
    throw std::out_of_range("process index " + std::to_string(index) + " is past the board");
  RowWriter writer(rows_begin_[index]);
  writer.begin();
  RowImage image{};
  image.generation = writer.word(kGenerationWord) + 1;
  writer.write(image, kWords);
  writer.end();
}

ProcessRow ProcessBoard::row(size_t index) const {
  if (index >= rows_)
    throw std::out_of_range("process index " + std::to_string(index) + " is past the board");
  ProcessRow out;
  out.index = index;
  // On the heap: a row's image is some 8 KiB, too much for a small stack.
  // Not zeroed: read_row fills every word up to the slots it counts.
  std::unique_ptr<RowImage> image(new RowImage);
  if (!read_row(rows_begin_[index], *image)) {
    out.stale = true;
    out.stats.state = "stale";
    return out;
  }
  out.pid = image->pid;
  out.generation = image->generation;
  out.started_unix_ms = image->started_unix_ms;
  out.state = image->state <= static_cast<uint32_t>(ProcessState::Stopped)
                  ? static_cast<ProcessState>(image->state)
                  : ProcessState::Empty;
  out.stats = stats_of(*image);
  bool running = out.state == ProcessState::Booting || out.state == ProcessState::Ready ||
                 out.state == ProcessState::Draining;
  out.stale = running && !alive(out.pid);
  out.stats.state = out.stale ? "stale" : process_state_name(out.state);
  return out;
}

GroupStats ProcessBoard::read() const {
  GroupStats g;
  g.group = group_state();
  g.processes.reserve(rows_);
  bool any_ready = false, any_booting = false, any_draining = false, any_stopped = false;
  bool configured = false;
  for (size_t i = 0; i < rows_; ++i) {
    ProcessRow row = this->row(i);
    if (row.pid != 0 && !row.stale) {
      if (!configured) {
        g.totals.mode = row.stats.mode;
        g.totals.workers = row.stats.workers;
        g.totals.threads = row.stats.threads;
        configured = true;
      }
      add_to(g.totals, row.stats);
      any_ready = any_ready || row.state == ProcessState::Ready;
      any_booting = any_booting || row.state == ProcessState::Booting;
      any_draining = any_draining || row.state == ProcessState::Draining;
      any_stopped = any_stopped || row.state == ProcessState::Stopped;
    }
    g.processes.push_back(std::move(row));
  }
  // The group's word wins when it drains; otherwise the group is ready
  // while any process is (they share the listeners).
  if (g.group == GroupState::Draining)
    g.totals.state = "draining";
  else if (any_ready)
    g.totals.state = "ready";
  else if (any_booting)
    g.totals.state = "booting";
  else if (any_draining)
    g.totals.state = "draining";
  else if (any_stopped)
    g.totals.state = "stopped";
  else
    g.totals.state = "booting";
  return g;
}

}  // namespace kino
