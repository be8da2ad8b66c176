# frozen_string_literal: true

require_relative "backtrace_formatter"
require_relative "server_log"
require_relative "error_stream"

module Kino
  # One worker, what the `workers` directive counts: runs after_worker_boot,
  # then `threads` threads, each running a RequestLoop on its own slot,
  # until the server's queue is closed. The same body runs inside a Ractor
  # (:ractor mode) or a Thread (:threaded mode), so it takes only shareable
  # arguments and keeps no state outside its own frame.
  #
  # A hook that raises (a StandardError or ScriptError) is logged with its
  # backtrace and the worker serves anyway: a replacement would run the same
  # hook and fail the same way, over and over. An exception beyond those
  # (Exception itself, NoMemoryError, SystemExit) ends the worker, as it
  # does when the app raises one.
  #
  # If any of its threads dies of an exception, the worker stops its other
  # threads and raises that exception, so the supervisor sees one failed
  # worker (in :ractor mode the ractor ends, and its threads with it).
  module Worker
    module_function

    # Marks a member thread ended by Thread#kill (not by an exception).
    KILLED = :killed

    # +hooks+ is a frozen Hash of the WorkerHooks that are set.
    def run(server_id, app, threads, first_slot, hooks, index)
      boot(server_id, hooks[:after_worker_boot], index) if hooks[:after_worker_boot]
      done = Thread::Queue.new
      errors = ErrorStream.new(server_id, ServerLog.speaker(index))
      members = Array.new(threads) do |t|
        Thread.new(t) do |thread_index|
          Thread.current.report_on_exception = false
          Thread.current.name = "kino-worker-slot-#{first_slot + thread_index}"
          outcome = KILLED # what is left if Thread#kill ends us: only ensure runs then
          begin
            RequestLoop.new(server_id, app, slot: first_slot + thread_index, on_error: hooks[:on_error],
                                            after_request_complete: hooks[:after_request_complete],
                                            speaker: ServerLog.speaker(index, threads > 1 ? thread_index : nil),
                                            errors: errors).run
            outcome = nil
          rescue Exception => e # rubocop:disable Lint/RescueException
            outcome = e
          ensure
            done << outcome
          end
        end
      end
      threads.times do
        error = done.pop
        next unless error

        # The others stop before the worker reports, so nothing of this
        # worker still runs when the supervisor answers what it held.
        members.each(&:kill)
        members.each { |m| m.join(1) }
        raise error == KILLED ? Kino::Error.new("a worker thread was killed") : error
      end
      :stopped
    end

    # Puma passes the worker's index to on_worker_boot; a hook that takes
    # no argument (`-> { ... }`, `def self.call`) is called without it.
    def boot(server_id, hook, index)
      hook_arity(hook).zero? ? hook.call : hook.call(index)
    rescue StandardError, ScriptError => e
      headline = "after_worker_boot failed (the worker serves anyway): #{e.class}: #{e.message}"
      ServerLog.write(server_id, ServerLog.line(ServerLog.speaker(index), BacktraceFormatter.format(headline, e)))
    end

    def hook_arity(hook)
      hook.respond_to?(:arity) ? hook.arity : hook.method(:call).arity
    rescue NameError
      -1 # a call answered by method_missing: give it the index
    end
  end
end
