# frozen_string_literal: true

module Kino
  # :threaded mode: each worker is a Thread running a WorkerGroup (a group
  # of `threads` threads) on the main ractor. They share the GVL, so Ruby
  # code runs one thread at a time, but every wait (queue, socket
  # back-pressure, Kino.sleep) releases it. The Supervisor starts workers
  # with #spawn and learns of their end from #next_exit.
  class ThreadPool
    def initialize(server_id, app, threads:, on_error: nil, after_worker_boot: nil)
      @server_id = server_id
      @app = app
      @threads = threads
      @on_error = on_error
      @after_worker_boot = after_worker_boot
      @exits = Thread::Queue.new
    end

    def spawn(index, first_slot)
      args = [@server_id, @app, @threads, first_slot, @on_error, @after_worker_boot]
      exits = @exits
      Thread.new(index) do |i|
        Thread.current.report_on_exception = false
        Thread.current.name = "kino-worker-#{i}"
        error = nil
        begin
          WorkerGroup.run(*args)
        rescue Exception => e # rubocop:disable Lint/RescueException
          error = e
        ensure
          exits << [Thread.current, error]
        end
      end
    end

    # Blocks until a worker ends: [handle, error or nil], or :wake.
    def next_exit
      @exits.pop
    end

    # Makes a blocked #next_exit return :wake.
    def wake
      @exits << :wake
    end

    def close; end
  end
end
