# frozen_string_literal: true

require_relative "worker_pool"

module Kino
  # :ractor mode: each worker is a Ractor running a WorkerGroup, so workers
  # run Ruby in parallel. Only shareable values go in: the server id and
  # slot numbers (Integers), the app and hooks (made shareable before the
  # pool starts). Requests never cross: each worker takes them from the
  # native queue itself and builds their env in its own ractor.
  #
  # Ruby 3.1 keeps one wait state per ractor, so two threads of the main
  # ractor blocked in Ractor#take at once can lose a wake-up (measured: a
  # worker ended and its watcher never woke). One thread therefore waits on
  # all workers with Ractor.select, and a small "waker" ractor lets the
  # supervisor interrupt that wait when it has started a new worker.
  class RactorPool < WorkerPool
    def initialize(...)
      super
      @live = []
      @closed = false
      @lock = Mutex.new
      @waker = build_waker
    end

    def spawn(index, first_slot)
      ractor = Ractor.new(*worker_args(first_slot),
                          name: "kino-worker-#{index}") do |server_id, app, threads, slot, on_error, boot|
        # The supervisor logs a worker's death with its backtrace; Ruby's
        # own report would print it a second time.
        Thread.current.report_on_exception = false
        Kino::WorkerGroup.run(server_id, app, threads, slot, on_error, boot)
      end
      @lock.synchronize { @live << ractor }
      ractor
    end

    # Blocks until a worker ends: [handle, error or nil]; :wake when #wake
    # was called; nil once closed with no worker left to wait for.
    def next_exit
      ractors, closed = @lock.synchronize { [@live.dup, @closed] }
      return nil if closed && ractors.empty?

      # A closed waker would make select return at once, forever.
      ractor, = closed ? Ractor.select(*ractors) : Ractor.select(@waker, *ractors)
      return :wake if ractor == @waker

      forget(ractor)
      [ractor, nil]
    rescue Ractor::RemoteError => e
      forget(e.ractor)
      [e.ractor, e.cause || e]
    rescue Ractor::ClosedError
      @lock.synchronize { @closed = true }
      :wake
    end

    def wake
      @waker.send(:wake)
    rescue Ractor::ClosedError
      nil
    end

    # Ends the waker: closing both of its ports ends it whether it waits to
    # receive or is stuck offering a wake-up nobody took.
    def close
      @lock.synchronize { @closed = true }
      if @waker.respond_to?(:close_incoming)
        @waker.close_incoming
        @waker.close_outgoing
      else
        @waker.close
      end
    rescue Ractor::ClosedError
      nil
    end

    private

    # Something Ractor.select can wait on next to the workers, that another
    # thread can make ready. Ruby 3.1-3.4: a ractor echoing what it receives
    # (Ractor.yield). Ruby 4.0 removed Ractor.yield and added Ractor::Port,
    # which select takes directly.
    def build_waker
      return Ractor::Port.new if defined?(Ractor::Port)

      Ractor.new(name: "kino-supervisor-waker") do
        Thread.current.report_on_exception = false
        loop { Ractor.yield(Ractor.receive) }
      end
    end

    def forget(ractor)
      @lock.synchronize { @live.delete(ractor) }
    end
  end
end
