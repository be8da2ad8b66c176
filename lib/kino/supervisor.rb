# frozen_string_literal: true

require_relative "backtrace_formatter"
require_relative "quarantine"

module Kino
  # Keeps `workers` workers running, from one monitor thread on the main
  # ractor. The spawner (RactorSpawner or ThreadSpawner) starts workers and
  # reports each one's end; the monitor decides what comes next:
  #
  # - it ended cleanly (the queue closed): nothing;
  # - it died: the requests its threads held are answered 500 at once
  #   through the native responder (a late answer from the dead worker is
  #   dropped by the first-claimant flag), the error is logged with its
  #   backtrace, on_worker_exit runs, and a replacement starts after a
  #   back-off that doubles with each quick crash, so a worker that dies at
  #   boot does not spin.
  #
  # The monitor is a side thread on purpose: a main thread blocked in
  # Ractor.select never ran SIGTERM handlers on Ruby 3.1.
  #
  # With quarantine_timeout set, a Quarantine sets stuck workers aside and
  # has the supervisor start replacements for them.
  class Supervisor
    BACKOFF_FIRST = 0.05
    BACKOFF_MAX = 5.0
    STABLE_AFTER = 30.0 # seconds alive after which a crash counts as the first again

    # How many slots (one a thread) the server must track: every worker
    # that may ever run, replacements for quarantine included.
    def self.slot_count(workers:, threads:, quarantine_max:)
      (workers + Quarantine.max_replacements(workers: workers, quarantine_max: quarantine_max)) * threads
    end

    def initialize(server_id, spawner, workers:, threads:, log:, on_worker_exit: nil,
                   quarantine_timeout: nil, quarantine_max: nil)
      @server_id = server_id
      @spawner = spawner
      @workers = workers
      @threads = threads
      @log = log
      @on_worker_exit = on_worker_exit
      if quarantine_timeout
        @quarantine = Quarantine.new(server_id, self, workers: workers, threads: threads,
                                                      timeout: quarantine_timeout, max: quarantine_max, log: log)
      end
      @lock = Mutex.new
      # Held while the counts are read and pushed, so that of two threads
      # reporting at once the later counts are the ones the core keeps.
      @report_lock = Mutex.new
      @running = {} # handle => [index, started_at]
      @quick_crashes = Hash.new(0)
      @respawns = 0
      @stopping = false
    end

    def start
      @workers.times { |index| start_worker(index) }
      @monitor = Thread.new do
        Thread.current.name = "kino-supervisor"
        monitor
      end
      @quarantine&.start
      self
    end

    # Call once the server's queue is closed, so workers end on their own.
    # True when they all did within `timeout` seconds.
    def stop(timeout)
      @lock.synchronize { @stopping = true }
      @quarantine&.stop
      @spawner.wake
      finished = @monitor.join(timeout)
      @spawner.close
      !finished.nil?
    end

    def respawns
      @lock.synchronize { @respawns }
    end

    def quarantined
      @quarantine ? @quarantine.count : 0
    end

    def running_workers
      @lock.synchronize { @running.size }
    end

    # For the Quarantine: the indexes of the workers running now.
    def running_indexes
      @lock.synchronize { @running.values.map(&:first) }
    end

    # For the Quarantine: starts worker +index+ next to one set aside.
    def start_replacement(index)
      start_worker(index)
      @spawner.wake
    end

    # Stats and the control plane read the pool natively, never calling
    # back into Ruby: every change is pushed there (the Quarantine pushes
    # its own count as it changes).
    def report_pool
      @report_lock.synchronize do
        Native.server_report_pool(@server_id, running_workers, respawns, quarantined)
      end
    rescue Kino::Error
      nil # the server was released
    end

    private

    # Spawns and registers under the lock: a worker that ends at once is
    # already reporting its end, and the monitor must find it registered.
    def start_worker(index)
      handle = @lock.synchronize do
        handle = @spawner.spawn(index, index * @threads)
        @running[handle] = [index, monotonic]
        handle
      end
      report_pool
      handle
    end

    def monitor
      loop do
        event = @spawner.next_exit
        break if event.nil? # the spawner is closed and nothing is left to watch

        if event == :wake
          break if stopping? && running_workers.zero?

          next
        end
        handle, error = event
        index, started = @lock.synchronize { @running.delete(handle) }
        next unless index

        report_pool

        begin
          worker_ended(index, started, error)
        rescue Kino::Error
          raise
        rescue StandardError => e
          # The monitor must outlive anything one worker's end throws at it
          # (a hook, a log IO): without it no worker is replaced again.
          @log.write("kino: supervisor: handling worker #{index}'s end failed: #{e.class}: #{e.message}\n")
        end
        break if stopping? && running_workers.zero?
      end
    rescue Kino::Error
      nil # the server was released: nothing left to supervise
    end

    def worker_ended(index, started, error)
      if error.nil?
        notify_exit(index, nil)
        return
      end
      answered = Native.server_fail_slots(@server_id, index * @threads, @threads)
      log_crash(index, error, answered)
      notify_exit(index, error)
      return if stopping?

      crashes = monotonic - started > STABLE_AFTER ? 1 : @quick_crashes[index] + 1
      @quick_crashes[index] = crashes
      delay = [BACKOFF_FIRST * (2**(crashes - 1)), BACKOFF_MAX].min
      @log.write("kino: restarting worker #{index} in #{format('%.2f', delay)}s\n")
      sleep delay
      return if stopping?

      @lock.synchronize { @respawns += 1 }
      start_worker(index) # reports the pool
    end

    def stopping?
      @lock.synchronize { @stopping }
    end

    def notify_exit(index, error)
      @on_worker_exit&.call(index, error)
    rescue StandardError => e
      @log.write("kino: on_worker_exit failed: #{e.class}: #{e.message}\n")
    end

    def log_crash(index, error, answered)
      what = begin
        error.is_a?(WorkerCrash) ? error.message : "#{error.class}: #{error.message}"
      rescue StandardError
        error.class.to_s
      end
      @log.write(BacktraceFormatter.format("kino: worker #{index} died: #{what}", error))
      @log.write("kino: answered #{answered} in-flight request(s) of worker #{index} with 500\n") if answered.positive?
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
