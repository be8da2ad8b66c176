# frozen_string_literal: true

require_relative "native"

module Kino
  # The stats board of a group of server processes (multi-process mode):
  # shared memory the parent maps before it forks, on which every child's
  # Kino::Server publishes its own stats (its row, by process index) and
  # from which the parent and every child's control plane read them all.
  #
  #   board = Kino::ProcessBoard.new(2)            # in the parent, before any fork
  #   # in child i: Kino::Server.new(app, configuration, process_board: board, process_index: i)
  #   board.stats[:served]                         # => every child's, summed
  #   board.stats[:processes].map { _1[:state] }   # => [:ready, :ready]
  #   board.draining!                              # every child's /ready says 503
  #
  # Rows are written by their own process only, a few times a second and
  # at each change of state, and read without a lock: a reader never waits
  # for a writer, and never sees half a row (core/control/process_board).
  class ProcessBoard
    # What Native.board_create takes; the native side holds the bound.
    attr_reader :id, :size

    def initialize(processes)
      raise ArgumentError, "processes must be an Integer, not #{processes.inspect}" unless processes.is_a?(Integer)

      @size = processes
      @id = Native.board_create(processes)
    end

    # The totals of every process that has a row (the keys of
    # Kino::Server#stats; counters and gauges summed, the queue-wait
    # histogram merged, mode, workers and threads as each process runs
    # them, no slots), `group` (what #ready! and #draining! said), and
    # `processes`: one Hash a row, {index:, pid:, generation:, started_at:,
    # state:, <the Kino::Server#stats keys>}. A row's state is :empty before
    # its process starts (and after #reset), :booting, :ready, :draining,
    # :stopped, or :stale when its process died without saying so.
    def stats
      Native.board_stats(@id)
    end

    # The group is serving (informational: each child's /ready still
    # follows that child).
    def ready!
      Native.board_set_state(@id, :ready)
      self
    end

    # The group drains: every child's /ready answers 503 from now on, so
    # balancers stop sending before any child stops accepting.
    def draining!
      Native.board_set_state(@id, :draining)
      self
    end

    def draining?
      stats[:group] == :draining
    end

    # Before forking a replacement for the child at `index` (which has
    # exited): its row is emptied, and a process still writing there stops.
    def reset(index)
      Native.board_reset(@id, index)
      self
    end

    # Lets go of this process's mapping (servers using the board keep it
    # until they are released). Other processes keep theirs.
    def release
      Native.board_release(@id)
    end
  end
end
