# frozen_string_literal: true

require_relative "worker_spawner"

module Kino
  # :threaded mode: each worker is a Thread running a Worker (with its
  # `threads` threads) on the main ractor. They share the GVL, so Ruby
  # code runs one thread at a time, but every wait (queue, socket
  # back-pressure, Kino.sleep) releases it. The Supervisor starts workers
  # with #spawn and learns of their end from #next_exit.
  class ThreadSpawner < WorkerSpawner
    def initialize(...)
      super
      @exits = Thread::Queue.new
    end

    def spawn(index, first_slot)
      args = worker_args(index, first_slot)
      exits = @exits
      Thread.new(index) do |i|
        Thread.current.report_on_exception = false
        Thread.current.name = "kino-worker-#{i}"
        error = nil
        begin
          Worker.run(*args)
        rescue Exception => e # rubocop:disable Lint/RescueException
          error = e
        ensure
          exits << [Thread.current, error]
        end
      end
    end

    # Blocks until a worker ends: [handle, error or nil]; :wake when #wake
    # was called; nil once closed (a closed queue pops nil).
    def next_exit
      @exits.pop
    end

    # Makes a blocked #next_exit return :wake.
    def wake
      @exits << :wake
    end

    def close
      @exits.close
    end
  end
end
