// The stats board of a group of forked server processes: one shared
// memory mapping, made by the parent before it forks, in which every
// process publishes a snapshot of its own ServerStats and from which any
// of them (the parent, any child's control plane) reads all of them.
//
// The mapping is MAP_SHARED | MAP_ANONYMOUS, so parent and children see
// the same pages after fork() without a file or a name. It holds a group
// word (booting, ready, draining: what the parent says of the group) and
// one row per process index. A row is written only by the process that
// holds that index and read by anyone, under a seqlock: the writer makes
// the row's sequence odd, stores the snapshot's words, and makes it even
// again; a reader copies the words and keeps the copy only if the sequence
// was the same even number before and after. Every word is a lock-free
// std::atomic (address-free, so valid across processes), read and written
// relaxed between the fences, so a torn read is detected, never undefined.
// Nothing here blocks: there is no mutex in the shared pages, and a process
// that dies in the middle of a write leaves a row that readers report as
// `stale` until the parent resets it.
//
// A child that died leaves its last row behind, marked with its pid. The
// parent calls reset(index) before it forks the replacement: the row is
// emptied and its generation goes up, so a writer still holding the old
// generation (a child that did not die after all) stops publishing there.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/server_stats.hpp"

namespace kino {

// Where a process stands, as its row says. `Empty`: nobody has claimed the
// row since the board was made or reset.
enum class ProcessState : uint32_t { Empty = 0, Booting, Ready, Draining, Stopped };

// What the parent says of the whole group.
enum class GroupState : uint32_t { Booting = 0, Ready, Draining };

const char* process_state_name(ProcessState state) noexcept;
const char* group_state_name(GroupState state) noexcept;

// One row as read: who wrote it and what it said. `stale`: the row could
// not be read whole (its writer died in the middle of a write), or its pid
// no longer exists while the row says it runs.
struct ProcessRow {
  size_t index = 0;
  int64_t pid = 0;  // 0 for an empty row
  uint64_t generation = 0;
  int64_t started_unix_ms = 0;  // when the process claimed the row
  ProcessState state = ProcessState::Empty;
  bool stale = false;
  ServerStats stats;  // its `state` is the row's, by name ("stale" when stale)
};

// The whole board at one moment: every row, and the totals of those a
// process has claimed (counters and gauges summed, the queue-wait
// histogram merged, mode, workers and threads as the rows say; the slots
// stay in the rows).
struct GroupStats {
  GroupState group = GroupState::Booting;
  std::vector<ProcessRow> processes;
  ServerStats totals;
};

class ProcessBoard {
 public:
  // Slots each row keeps (the first ones of a process; more are left out
  // of its row, never of its counters).
  static constexpr size_t kMaxSlots = 256;
  static constexpr size_t kMaxProcesses = 1024;

  // Maps a board for `processes` rows, all empty, the group booting.
  // Throws std::invalid_argument for 0 or more than kMaxProcesses, and
  // std::system_error when mmap fails.
  explicit ProcessBoard(size_t processes);
  ~ProcessBoard();  // unmaps: in this process only, the others keep theirs
  ProcessBoard(const ProcessBoard&) = delete;
  ProcessBoard& operator=(const ProcessBoard&) = delete;

  size_t size() const noexcept { return rows_; }

  GroupState group_state() const noexcept;
  void set_group_state(GroupState state) noexcept;

  // The row's owner says it starts: its pid, now, `Booting`; returns the
  // generation it holds the row by, which every publish must show.
  // Throws std::out_of_range for an index past size().
  uint64_t claim(size_t index, pid_t pid);

  // Writes `stats` into row `index` as `state`, if the row is still of
  // `generation`; false when it was reset meanwhile (nothing written) or
  // another writer holds it (a zombie owner; this publish is skipped).
  bool publish(size_t index, uint64_t generation, ProcessState state, const ServerStats& stats) noexcept;

  // The parent, once the row's process is gone: the row is emptied and its
  // generation goes up. Takes the row even when a dead writer left it
  // half-written.
  void reset(size_t index);

  // One row, read whole (retried while a write is under way).
  ProcessRow row(size_t index) const;
  GroupStats read() const;

  struct Header;
  struct Row;

 private:
  size_t rows_;
  size_t bytes_;
  void* memory_;
  Header* header_;
  Row* rows_begin_;
};

}  // namespace kino
