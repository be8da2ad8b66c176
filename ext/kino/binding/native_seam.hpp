// The seam: everything Ruby can ask of the native side, listed once.
//
// A row names the Ruby method, the C++ function behind it, its arity (-1:
// some arguments are optional) and the unit that defines it
// (native_<unit>.cpp). A name "Class#method" is an instance method of
// Kino::Native::Class, created by that unit; any other name is a function
// of Kino::Native. Init_kino registers every row and publishes the list as
// Kino::Native::SEAM, which spec/native_seam_spec.rb holds against what
// Ruby sees and against the seam table of doc/architecture.md.
#pragma once

#include "binding.hpp"

// X(unit, name, function, arity)
#define KINO_NATIVE_SEAM(X)                                                  \
  X(server, "server_create", native_server_create, 1)                        \
  X(server, "server_start", native_server_start, 1)                          \
  X(server, "server_addresses", native_server_addresses, 1)                  \
  X(server, "server_stop", native_server_stop, 2)                            \
  X(server, "server_close_queue", native_server_close_queue, 1)              \
  X(server, "server_release", native_server_release, 1)                      \
  X(server, "server_stats", native_server_stats, 1)                          \
  X(server, "server_control_address", native_server_control_address, 1)      \
  X(server, "server_log", native_server_log, 2)                              \
  X(server, "server_drain_log", native_server_drain_log, 1)                  \
  X(server, "server_reload_tls", native_server_reload_tls, 1)                \
  X(process_board, "board_create", native_board_create, 1)                   \
  X(process_board, "board_stats", native_board_stats, 1)                     \
  X(process_board, "board_set_state", native_board_set_state, 2)             \
  X(process_board, "board_reset", native_board_reset, 2)                     \
  X(process_board, "board_release", native_board_release, 1)                 \
  X(server, "listen_socket", native_listen_socket, 2)                        \
  X(workers, "server_fail_slots", native_server_fail_slots, 3)               \
  X(workers, "server_slot_busy_ms", native_server_slot_busy_ms, 3)           \
  X(workers, "server_requeue_held", native_server_requeue_held, 3)           \
  X(workers, "server_worker_exited", native_server_worker_exited, 3)         \
  X(workers, "server_next_worker_exit", native_server_next_worker_exit, 1)   \
  X(workers, "server_wake_worker_exits", native_server_wake_worker_exits, 1) \
  X(workers, "server_report_pool", native_server_report_pool, 4)             \
  X(request, "take_one", native_take_one, -1)                                \
  X(request, "taker", native_taker, -1)                                      \
  X(request, "Taker#take", taker_take, 0)                                    \
  X(request, "Taker#respond_and_take", taker_respond_and_take, 4)            \
  X(request, "Taker#close", taker_close, 0)                                  \
  X(request, "Request#claimed?", request_claimed_p, 0)                       \
  X(response, "respond", native_respond, 4)                                  \
  X(response, "respond_start", native_respond_start, 3)                      \
  X(response, "respond_write", native_respond_write, 2)                      \
  X(response, "respond_finish", native_respond_finish, 1)                    \
  X(response, "respond_error", native_respond_error, 3)                      \
  X(response, "lent_bodies", native_lent_bodies, 0)                          \
  X(input, "input_read", native_input_read, 3)                               \
  X(input, "input_rewind", native_input_rewind, 1)                           \
  X(sleep, "sleep", native_sleep, -1)                                        \
  X(logger, "logger_open", native_logger_open, 2)                            \
  X(logger, "logger_write", native_logger_write, 2)                          \
  X(logger, "logger_dropped", native_logger_dropped, 1)                      \
  X(logger, "logger_tty?", native_logger_tty_p, 1)                           \
  X(logger, "logger_reopen", native_logger_reopen, 1)                        \
  X(logger, "logger_flush", native_logger_flush, 2)                          \
  X(logger, "logger_flush_all", native_logger_flush_all, 1)                  \
  X(logger, "logger_reopen_all", native_logger_reopen_all, 0)                \
  X(logger, "logger_pause_all", native_logger_pause_all, 0)                  \
  X(logger, "logger_resume_all", native_logger_resume_all, 0)

namespace kino::binding {

// The C signature Ruby calls a method of `Arity` arguments with: the
// receiver first, then each argument; for -1, argc and argv.
template <int Arity>
struct SeamSignature;
template <>
struct SeamSignature<-1> {
  using type = VALUE(int argc, VALUE* argv, VALUE self);
};
template <>
struct SeamSignature<0> {
  using type = VALUE(VALUE self);
};
template <>
struct SeamSignature<1> {
  using type = VALUE(VALUE self, VALUE);
};
template <>
struct SeamSignature<2> {
  using type = VALUE(VALUE self, VALUE, VALUE);
};
template <>
struct SeamSignature<3> {
  using type = VALUE(VALUE self, VALUE, VALUE, VALUE);
};
template <>
struct SeamSignature<4> {
  using type = VALUE(VALUE self, VALUE, VALUE, VALUE, VALUE);
};

// Every function of the seam, declared with the signature its arity
// implies. A unit's definition that does not match is another function,
// and leaves this one undefined: the extension then fails to load.
#define KINO_SEAM_DECLARE(unit, name, function, arity) SeamSignature<arity>::type function;
KINO_NATIVE_SEAM(KINO_SEAM_DECLARE)
#undef KINO_SEAM_DECLARE

}  // namespace kino::binding
