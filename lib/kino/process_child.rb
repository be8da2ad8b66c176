# frozen_string_literal: true

require "io/wait"
require_relative "errors"
require_relative "server"
require_relative "server_log"
require_relative "mode_choice"
require_relative "backtrace_formatter"

module Kino
  # One child of a process group, from the fork to its exit: it runs
  # after_fork, then a normal one-process Kino::Server on the sockets the
  # parent bound (its own native core and workers, started only now: a
  # fork never copies a running native thread), and serves until TERM or
  # until its parent is gone.
  #
  # The parent is watched through a pipe whose write end only the parent
  # holds: when the parent dies, for whatever reason, the read end here
  # reaches end-of-file and the child drains and exits, so no orphan goes
  # on serving an old deploy.
  #
  # Signals: TERM drains (a second one exits at once). INT and QUIT are
  # ignored: a terminal's Ctrl-C reaches every process of its group, and
  # the parent, which heard it too, sends each child TERM; a second Ctrl-C
  # makes the parent end them. USR1 and HUP are answered as `kino` answers
  # them in one process (the parent forwards them).
  class ProcessChild
    POLL_INTERVAL = 0.1
    HANDLED_SIGNALS = %w[USR1 HUP].freeze
    IGNORED_SIGNALS = %w[INT QUIT USR2 ALRM].freeze

    # +chosen+ is the parent's ModeChoice::Chosen when it preloaded the
    # app; otherwise +load_app+ loads it here. +answer_signal+ is called
    # with (signal name, server) for USR1 and HUP.
    def initialize(index, configuration, log:, listen_sockets:, parent_alive:, ready:, chosen:, load_app:,
                   answer_signal:, board: nil)
      @index = index
      @configuration = configuration
      @log = ServerLog::Output.new(log.is_a?(ServerLog::Output) ? log.io : log)
      @listen_sockets = listen_sockets
      @parent_alive = parent_alive
      @ready = ready
      @chosen = chosen
      @load_app = load_app
      @answer_signal = answer_signal
      @board = board
      @stop = false
      @signals = []
    end

    # Returns the exit status for the child.
    def run
      trap_signals
      run_after_fork
      chosen = @chosen || ModeChoice.new(@load_app.call, @configuration, log: @log).choose
      server = Server.new(chosen.app, @configuration, log: @log, listeners: @listen_sockets.pairs,
                                                      control_listener: @listen_sockets.control,
                                                      process_index: @index, process_board: @board, chosen: chosen)
      server.start
      say_ready
      serve_until_stopped(server)
      server.shutdown
      0
    rescue Kino::Error => e
      @log.write("kino: process #{@index}: #{e.message}\n")
      1
    rescue Exception => e # rubocop:disable Lint/RescueException -- a child must say why it dies, whatever it is
      raise if e.is_a?(SystemExit)

      @log.write(BacktraceFormatter.format("kino: process #{@index}: #{e.class}: #{e.message}", e))
      1
    end

    private

    def trap_signals
      Signal.trap("TERM") do
        exit!(1) if @stop
        @stop = true
      end
      IGNORED_SIGNALS.each { |sig| Signal.trap(sig, "IGNORE") }
      HANDLED_SIGNALS.each { |sig| Signal.trap(sig) { @signals << sig } }
    end

    # One write, shorter than PIPE_BUF: the children's lines never mix.
    def say_ready
      @ready.write("#{@index} #{Process.pid}\n")
      @ready.close
    rescue IOError, SystemCallError
      nil
    end

    def run_after_fork
      hook = @configuration[:after_fork]
      return unless hook

      arity = hook.respond_to?(:arity) ? hook.arity : hook.method(:call).arity
      arity.zero? ? hook.call : hook.call(@index)
    end

    def serve_until_stopped(server)
      until @stop
        @answer_signal.call(@signals.shift, server) until @signals.empty?
        next unless @parent_alive.wait_readable(POLL_INTERVAL)

        # Nobody writes to the pipe: readable means its last writer, the
        # parent, is gone.
        @log.write("kino: process #{@index}: the parent process is gone; stopping\n")
        break
      end
    end
  end
end
