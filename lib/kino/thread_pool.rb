# frozen_string_literal: true

module Kino
  # :threaded mode: workers × threads Ruby threads on the main ractor, each
  # running a Worker loop. They share the GVL, so Ruby code runs one at a
  # time, but every wait (queue, socket back-pressure, Kino.sleep) releases
  # it.
  class ThreadPool
    attr_reader :size

    def initialize(server_id, app, workers:, threads:, on_error: nil, after_worker_boot: nil, log: $stderr)
      @server_id = server_id
      @app = app
      @workers = workers
      @threads_per_worker = threads
      @size = workers * threads
      @on_error = on_error
      @after_worker_boot = after_worker_boot
      @log = log
      @threads = []
      @threads_lock = Mutex.new
    end

    # Each worker is a group of threads. Its first thread runs
    # after_worker_boot, then starts its siblings, so no thread of a worker
    # serves before the hook has run.
    def start
      @threads = Array.new(@workers) do |w|
        Thread.new(w) do |worker_index|
          Thread.current.name = "kino-worker-#{worker_index}.0"
          @after_worker_boot&.call
          siblings = (1...@threads_per_worker).map do |t|
            Thread.new(t) do |thread_index|
              Thread.current.name = "kino-worker-#{worker_index}.#{thread_index}"
              run_worker(worker_index)
            end
          end
          @threads_lock.synchronize { @threads.concat(siblings) }
          run_worker(worker_index)
        end
      end
      self
    end

    # Waits for every thread to return (they do once the queue is closed
    # and empty); true when all did within `timeout` seconds.
    def join(timeout = nil)
      deadline = timeout && (Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout)
      @threads_lock.synchronize { @threads.dup }.all? do |t|
        left = deadline && [deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max
        t.join(left)
      end
    end

    def kill
      @threads_lock.synchronize { @threads.dup }.each(&:kill)
    end

    def alive_count
      @threads_lock.synchronize { @threads.dup }.count(&:alive?)
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
