# frozen_string_literal: true

module Kino
  # The body of one worker: run after_worker_boot, then `threads` threads
  # each running a Worker loop on its own slot, until the server's queue is
  # closed. The same body runs inside a Ractor (:ractor mode) or a Thread
  # (:threaded mode), so it takes only shareable arguments and keeps no
  # state outside its own frame.
  #
  # If any of its threads dies of an exception, the group stops its other
  # threads and raises that exception, so the supervisor sees one failed
  # worker (in :ractor mode the ractor ends, and its threads with it).
  module WorkerGroup
    module_function

    # Marks a member thread ended by Thread#kill (not by an exception).
    KILLED = :killed

    def run(server_id, app, threads, first_slot, on_error, after_worker_boot)
      after_worker_boot&.call
      done = Thread::Queue.new
      members = Array.new(threads) do |t|
        Thread.new(t) do |thread_index|
          Thread.current.report_on_exception = false
          Thread.current.name = "kino-worker-slot-#{first_slot + thread_index}"
          outcome = KILLED # what is left if Thread#kill ends us: only ensure runs then
          begin
            Worker.new(server_id, app, slot: first_slot + thread_index, on_error: on_error).run
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

        # The others stop before the group reports, so nothing of this
        # worker still runs when the supervisor answers what it held.
        members.each(&:kill)
        members.each { |m| m.join(1) }
        raise error == KILLED ? Kino::Error.new("a worker thread was killed") : error
      end
      :stopped
    end
  end
end
