# frozen_string_literal: true

module Kino
  # Sets stuck workers aside. With quarantine_timeout set, a poller looks at
  # how long each worker's current requests have run. A worker stuck past
  # the timeout is set aside (never killed: its handler may still finish,
  # and the worker then goes on serving) and a fresh worker is started so
  # capacity recovers, at most quarantine_max times over the server's life.
  class Quarantine
    # How many replacements may ever start: quarantine_max, by default one
    # per worker.
    def self.max_replacements(workers:, quarantine_max:)
      quarantine_max || workers
    end

    # +supervisor+ names the workers to look at (#running_indexes) and
    # starts a replacement when asked (#start_replacement).
    def initialize(server_id, supervisor, workers:, threads:, timeout:, max:, log:)
      @server_id = server_id
      @supervisor = supervisor
      @workers = workers
      @threads = threads
      @timeout = timeout
      @max = self.class.max_replacements(workers: workers, quarantine_max: max)
      @log = log
      @lock = Mutex.new
      @count = 0
      @set_aside = {} # index => true, for workers set aside and still stuck
      @cap_logged = false
    end

    def start
      interval = [@timeout / 4.0, 1.0].min
      limit_ms = (@timeout * 1000).to_i
      @poller = Thread.new do
        Thread.current.name = "kino-quarantine"
        loop do
          sleep interval
          check(limit_ms)
        end
      end
      self
    end

    def stop
      @poller&.kill
    end

    # How many workers were set aside (each one replaced).
    def count
      @lock.synchronize { @count }
    end

    private

    def check(limit_ms)
      @supervisor.running_indexes.each do |index|
        busy = Native.server_slot_busy_ms(@server_id, index * @threads, @threads).max
        stuck = busy && busy > limit_ms
        # A worker set aside that finished its stuck request serves again,
        # and may be set aside again if it gets stuck again.
        @set_aside.delete(index) unless stuck
        next if !stuck || @set_aside[index]

        set_aside(index, busy)
      end
    rescue Kino::Error
      nil
    end

    def set_aside(index, busy)
      if count >= @max
        unless @cap_logged
          @log.write("kino: worker #{index} is stuck (#{busy} ms) but quarantine_max (#{@max}) " \
                     "is reached; no more replacements will be started\n")
          @cap_logged = true
        end
        return
      end
      replacement = @lock.synchronize do
        @count += 1
        @workers + @count - 1
      end
      @set_aside[index] = true
      # Requests its threads took beyond the stuck one (`batch`) would wait
      # behind it: they go back to the queue, for the others.
      Native.server_requeue_held(@server_id, index * @threads, @threads)
      @supervisor.report_pool
      @log.write("kino: worker #{index} set aside: a request has run #{busy} ms " \
                 "(quarantine_timeout #{@timeout}s); started worker #{replacement}\n")
      @supervisor.start_replacement(replacement)
    end
  end
end
