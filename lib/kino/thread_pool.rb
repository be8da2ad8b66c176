# frozen_string_literal: true

module Kino
  # :threaded mode: workers × threads Ruby threads on the main ractor, each
  # running a Worker loop. They share the GVL, so Ruby code runs one at a
  # time, but every wait (queue, socket back-pressure, Kino.sleep) releases
  # it.
  class ThreadPool
    attr_reader :size

    def initialize(server_id, app, workers:, threads:, on_error: nil, log: $stderr)
      @server_id = server_id
      @app = app
      @size = workers * threads
      @on_error = on_error
      @log = log
      @threads = []
    end

    def start
      @threads = Array.new(@size) do |index|
        Thread.new(index) do |i|
          Thread.current.name = "kino-worker-#{i}"
          run_worker(i)
        end
      end
      self
    end

    # Waits for every thread to return (they do once the queue is closed
    # and empty); true when all did within `timeout` seconds.
    def join(timeout = nil)
      deadline = timeout && (Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout)
      @threads.all? do |t|
        left = deadline && [deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max
        t.join(left)
      end
    end

    def kill
      @threads.each(&:kill)
    end

    def alive_count
      @threads.count(&:alive?)
    end

    private

    # Worker#serve already turns app errors into 500s; what reaches here
    # escaped the loop itself (a bug, or an Exception the app raised on
    # purpose). The thread logs it and takes the next request.
    def run_worker(index)
      worker = Worker.new(@server_id, @app, on_error: @on_error)
      begin
        worker.run
      rescue Kino::Error
        # The server was released under us: nothing left to serve.
        nil
      rescue Exception => e # rubocop:disable Lint/RescueException
        @log.write("kino: worker #{index} failed: #{e.class}: #{e.message}\n" \
                   "#{(e.backtrace || []).first(20).map { |l| "    #{l}\n" }.join}")
        retry
      end
    end
  end
end
