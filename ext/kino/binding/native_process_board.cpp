// The process board unit of Kino::Native, for Kino::ProcessBoard: the
// shared stats board of a group of forked server processes
// (core/control/process_board). The parent creates it before any fork;
// Ruby holds its integer id, which a Kino::Server of the group passes as
// its `process_board` option.
#include <string>

#include "core/control/board_registry.hpp"
#include "native_seam.hpp"
#include "native_server.hpp"

namespace kino::binding {

namespace {

std::shared_ptr<ProcessBoard> find_board(uint64_t id) {
  auto board = BoardRegistry::instance().find(id);
  if (!board) throw std::runtime_error("no process board with id " + std::to_string(id));
  return board;
}

// An index Ruby gave, checked against the board's size. Raises
// ArgumentError, so no C++ object may be alive here.
size_t row_index(VALUE index, size_t rows) {
  long long i = NUM2LL(index);
  if (i < 0 || static_cast<unsigned long long>(i) >= rows)
    rb_raise(rb_eArgError, "process index %lld is not on a board of %zu processes", i, rows);
  return static_cast<size_t>(i);
}

size_t board_size(uint64_t id) {
  size_t rows = 0;
  protect([&]() -> VALUE {
    rows = find_board(id)->size();
    return Qnil;
  });
  return rows;
}

}  // namespace

// Native.board_create(processes) -> Integer id: a board of `processes`
// empty rows, mapped shared so that children forked later see it.
VALUE native_board_create(VALUE, VALUE processes) {
  long long n = NUM2LL(processes);
  if (n < 1 || n > static_cast<long long>(ProcessBoard::kMaxProcesses))
    rb_raise(rb_eArgError, "processes must be between 1 and %zu", ProcessBoard::kMaxProcesses);
  return protect([&]() -> VALUE {
    return ULL2NUM(BoardRegistry::instance().add(std::make_shared<ProcessBoard>(static_cast<size_t>(n))));
  });
}

// Native.board_stats(id) -> Hash: the totals, with the keys of
// Native.server_stats, plus `group` (:booting, :ready, :draining) and
// `processes`, one Hash a row: index, pid (nil for an empty row),
// generation, started_at (a Float of Unix seconds, nil for an empty row),
// then that process's server_stats keys, its `state` one of :empty,
// :booting, :ready, :draining, :stopped or :stale.
VALUE native_board_stats(VALUE, VALUE id) {
  uint64_t bid = NUM2ULL(id);
  GroupStats* held = nullptr;
  protect([&]() -> VALUE {
    held = new GroupStats(find_board(bid)->read());
    return Qnil;
  });
  return with_held(held, [](const GroupStats& g) {
    auto sym = [](const char* name) { return ID2SYM(rb_intern(name)); };
    VALUE h = server_stats_hash(g.totals);
    rb_hash_aset(h, sym("group"), sym(group_state_name(g.group)));
    VALUE rows = rb_ary_new_capa(static_cast<long>(g.processes.size()));
    for (const ProcessRow& row : g.processes) {
      VALUE r = rb_hash_new();
      rb_hash_aset(r, sym("index"), ULL2NUM(row.index));
      rb_hash_aset(r, sym("pid"), row.pid ? LL2NUM(row.pid) : Qnil);
      rb_hash_aset(r, sym("generation"), ULL2NUM(row.generation));
      rb_hash_aset(r, sym("started_at"),
                   row.pid ? DBL2NUM(static_cast<double>(row.started_unix_ms) / 1000.0) : Qnil);
      rb_hash_update_by(r, server_stats_hash(row.stats), nullptr);
      rb_ary_push(rows, r);
    }
    rb_hash_aset(h, sym("processes"), rows);
    return h;
  });
}

// Native.board_set_state(id, state): the parent's word for the group,
// :booting, :ready or :draining. While it is :draining, every process's
// /ready answers 503.
VALUE native_board_set_state(VALUE, VALUE id, VALUE state) {
  uint64_t bid = NUM2ULL(id);
  Check_Type(state, T_SYMBOL);
  ID name = SYM2ID(state);
  GroupState group;
  if (name == rb_intern("booting"))
    group = GroupState::Booting;
  else if (name == rb_intern("ready"))
    group = GroupState::Ready;
  else if (name == rb_intern("draining"))
    group = GroupState::Draining;
  else
    rb_raise(rb_eArgError, "a group's state is :booting, :ready or :draining");
  return protect([&]() -> VALUE {
    find_board(bid)->set_group_state(group);
    return Qnil;
  });
}

// Native.board_reset(id, index): the parent, once that row's process is
// gone (before it forks the replacement): the row is emptied and a
// process still writing to it stops.
VALUE native_board_reset(VALUE, VALUE id, VALUE index) {
  uint64_t bid = NUM2ULL(id);
  size_t i = row_index(index, board_size(bid));
  return protect([&]() -> VALUE {
    find_board(bid)->reset(i);
    return Qnil;
  });
}

// Native.board_release(id) -> true, or false for an unknown id. This
// process lets go of its mapping once no server of it uses the board;
// other processes keep theirs.
VALUE native_board_release(VALUE, VALUE id) {
  uint64_t bid = NUM2ULL(id);
  return protect([&]() -> VALUE { return BoardRegistry::instance().remove(bid) ? Qtrue : Qfalse; });
}

void init_native_process_board() {
  for (const char* name :
       {"group", "processes", "index", "pid", "generation", "started_at", "empty", "stopped", "stale"})
    rb_intern(name);
}

}  // namespace kino::binding
