# frozen_string_literal: true

require_relative "errors"
require_relative "native"
require_relative "mode_choice"
require_relative "process_child"
require_relative "process_board"

module Kino
  # The parent of `processes N`: it binds every listener once, loads the
  # app once (preload_app) and forks N children, each a ProcessChild
  # serving those sockets; then it only supervises. It never runs app
  # code after the first fork and never starts a native thread or a
  # Ractor, so each fork copies a process with one thread in it.
  #
  # A child that dies is logged and replaced after a back-off that starts
  # at FIRST_BACKOFF, doubles with each death within STABLE_AFTER of its
  # start, up to MAX_BACKOFF, and starts again once a child has lived that
  # long. #drain sends every child TERM (each finishes its in-flight
  # requests within shutdown_timeout) and waits for the last; #kill_all
  # ends them at once.
  #
  # Kino::Logger writers running in the parent (an app preloaded with
  # one) have native threads: around each fork they are paused (flushed,
  # joined) and started again in both processes, so no child inherits a
  # thread's half-done write or a lock it held.
  class ProcessGroup
    FIRST_BACKOFF = 0.5
    MAX_BACKOFF = 30.0
    STABLE_AFTER = 60.0
    # Past shutdown_timeout, how long a draining child may take to exit
    # (workers finishing, logs flushing) before it is killed.
    EXIT_GRACE = 5.0
    REAP_INTERVAL = 0.05

    # One place in the group: the child serving it now, if any.
    Slot = Struct.new(:index, :pid, :started_at, :fast_deaths, :restart_at, :ready)

    attr_reader :chosen, :board

    # +load_app+ loads the app (in the parent with preload_app, else in
    # each child). +answer_signal+ is what a child does with USR1 and HUP.
    def initialize(configuration, log:, listen_sockets:, load_app:, answer_signal:)
      @configuration = configuration
      @log = log
      @listen_sockets = listen_sockets
      @load_app = load_app
      @answer_signal = answer_signal
      @slots = Array.new(configuration[:processes]) { |i| Slot.new(i, nil, nil, 0, nil, false) }
      @ready_said = +""
      @lost_before_ready = false
      @draining = false
      @chosen = nil
      @board = nil
    end

    def size
      @slots.size
    end

    # Preloads (with preload_app) and forks every child. Returns self.
    def start
      @chosen = ModeChoice.new(@load_app.call, @configuration, log: @log).choose if @configuration[:preload_app]
      @board = Kino::ProcessBoard.new(size)
      @parent_alive, @parent_alive_writer = IO.pipe
      # Each child writes "index pid" here once its server serves.
      @ready_reader, @ready_writer = IO.pipe
      @slots.each { |slot| fork_child(slot) }
      self
    end

    # The pids of the children alive now, by index (nil for a place
    # waiting for its replacement).
    def pids
      @slots.map(&:pid)
    end

    # Whether every child serves (each has said so since it started).
    def ready?
      @slots.all? { |slot| slot.pid && slot.ready }
    end

    # Whether a child ended before the whole group had served once: a boot
    # that fails (a restart's successor gives up then).
    def lost_before_ready?
      @lost_before_ready
    end

    # Every child's stats and the totals, from the group's board
    # (Kino::ProcessBoard#stats): { processes: [{ index:, pid:, state:,
    # ... }], <the keys of Server#stats, summed> }.
    def stats
      @board.stats
    end

    # Reaps children that exited and starts the replacements that are due.
    # The launcher calls it between its short sleeps.
    def supervise
      read_ready
      reap { |slot, status| child_exited(slot, status) }
      return if @draining

      now = monotonic
      @slots.each { |slot| fork_child(slot) if slot.pid.nil? && slot.restart_at && now >= slot.restart_at }
    end

    # Sends +signal+ to every child (USR1, HUP: each answers for itself).
    def forward(signal)
      @slots.each { |slot| signal_child(signal, slot.pid) }
    end

    # Graceful stop: every child gets TERM and drains; returns once the
    # last has exited (a child still there past shutdown_timeout and
    # EXIT_GRACE is killed).
    def drain(sockets: :close)
      @draining = true
      @board.draining!
      forward("TERM")
      deadline = monotonic + @configuration[:shutdown_timeout] + EXIT_GRACE
      until @slots.all? { |slot| slot.pid.nil? }
        reap { |slot, status| child_drained(slot, status) }
        break if monotonic > deadline

        sleep REAP_INTERVAL
      end
      kill_stragglers
    ensure
      sockets == :disown ? @listen_sockets.disown! : @listen_sockets.close
    end

    # From a trap handler (a second stop signal): every child ends now.
    def kill_all
      @slots.each { |slot| signal_child("KILL", slot.pid) }
    end

    private

    def fork_child(slot)
      slot.restart_at = nil
      @board.reset(slot.index) # a dead child's row goes
      @configuration[:before_fork]&.call
      # Log writers pause and resume around it (ForkHook).
      pid = Process.fork { exit!(run_child(slot.index)) }
      slot.pid = pid
      slot.ready = false
      slot.started_at = monotonic
    rescue StandardError => e
      @log.write("kino: process #{slot.index}: cannot start: #{e.class}: #{e.message}; " \
                 "retrying in #{backoff(slot)}s\n")
      slot.restart_at = monotonic + backoff(slot)
    end

    # In the child: nothing of the parent's supervision goes on here.
    def run_child(index)
      @parent_alive_writer.close
      @ready_reader.close
      status = ProcessChild.new(index, @configuration, log: @log, listen_sockets: @listen_sockets,
                                                       parent_alive: @parent_alive, ready: @ready_writer,
                                                       chosen: @chosen,
                                                       load_app: @load_app, answer_signal: @answer_signal,
                                                       board: @board).run
      status
    ensure
      # exit! skips at_exit (the parent's handlers, such as its pidfile's):
      # write what Ruby buffered first.
      [$stdout, $stderr].each do |io|
        io.flush
      rescue IOError, SystemCallError
        nil
      end
    end

    def reap
      @slots.each do |slot|
        next unless slot.pid

        pid, status = Process.waitpid2(slot.pid, Process::WNOHANG)
        yield slot, status if pid
      rescue Errno::ECHILD
        yield slot, nil
      end
    end

    def read_ready
      @ready_said << @ready_reader.read_nonblock(4096)
      while (line = @ready_said.slice!(/\A.*\n/))
        index, pid = line.split.map { |word| Integer(word) }
        slot = @slots[index]
        slot.ready = true if slot&.pid == pid
      end
    rescue IO::WaitReadable, IOError # EOFError too
      nil
    end

    def child_exited(slot, status)
      pid = slot.pid
      @lost_before_ready = true unless @ever_ready ||= ready?
      slot.pid = nil
      slot.ready = false
      return child_drained(slot, status, pid) if @draining

      lived = monotonic - slot.started_at
      slot.fast_deaths = lived >= STABLE_AFTER ? 0 : slot.fast_deaths + 1
      delay = backoff(slot)
      slot.restart_at = monotonic + delay
      @log.write("kino: process #{slot.index} (pid #{pid}) #{describe(status)} after #{lived.round(1)}s; " \
                 "replacing in #{delay}s\n")
    end

    def child_drained(slot, status, pid = slot.pid)
      slot.pid = nil
      return if status.nil? || status.success?

      @log.write("kino: process #{slot.index} (pid #{pid}) #{describe(status)} while stopping\n")
    end

    def kill_stragglers
      left = @slots.select(&:pid)
      return if left.empty?

      @log.write("kino: #{left.size} process(es) still running past shutdown_timeout; killing them\n")
      left.each do |slot|
        signal_child("KILL", slot.pid)
        Process.waitpid(slot.pid)
      rescue Errno::ECHILD
        nil
      ensure
        slot.pid = nil
      end
    end

    def backoff(slot)
      [FIRST_BACKOFF * (2**slot.fast_deaths), MAX_BACKOFF].min
    end

    def describe(status)
      return "exited" unless status
      return "was killed by SIG#{Signal.signame(status.termsig)}" if status.signaled?

      "exited with status #{status.exitstatus}"
    end

    def signal_child(signal, pid)
      Process.kill(signal, pid) if pid
    rescue Errno::ESRCH
      nil
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
