# frozen_string_literal: true

require_relative "errors"
require_relative "native"
require_relative "pidfile"
require_relative "listen_sockets"
require_relative "process_group"
require_relative "successor"

module Kino
  # What `kino` (Kino::Launcher) does with `processes` above 1, and as the
  # successor of a restart: the parent's life. It claims the pidfile,
  # binds every listener once (ListenSockets), has a ProcessGroup preload
  # and fork, then supervises between short sleeps, answering signals the
  # way the launcher does in one process: TERM, INT and QUIT drain the
  # children (a second one kills them, in the launcher's trap), USR1 and
  # HUP go to the children, and USR2 starts a Successor.
  #
  # Mixed into Launcher, whose load_app, traps and signal answers it uses.
  module GroupMode
    private

    # `processes N`: the parent binds, preloads, forks and supervises
    # (ProcessGroup); each child serves (ProcessChild).
    def run_group(systemd, activated, handed_over)
      @handed_over = handed_over
      # A successor takes the pidfile over once it serves (see #take_over).
      @pidfile = claim_group_pidfile unless handed_over
      sockets = ListenSockets.open(@configuration, activated: activated, handed_over: handed_over)
      @sockets = sockets
      @group = ProcessGroup.new(@configuration, log: @log, listen_sockets: sockets, load_app: -> { @app || load_app },
                                                answer_signal: ->(sig, server) { answer_signal(sig, server) })
      previous = trap_signals
      @group.start
      group_banner(@group, sockets)
      systemd.ready("Kino #{Kino::VERSION}: #{@group.size} processes, listening on #{sockets.addresses.join(', ')}")
      supervise_until_stopped(@group)
      @stdout.puts "- Gracefully stopping (#{stop_reason}), waiting for #{@group.size} processes to finish"
      systemd.stopping("Gracefully stopping (#{stop_reason})")
      @group.drain(sockets: @successor_ready ? :disown : :close)
      @stdout.puts "- Goodbye!"
      0
    rescue Kino::Error => e
      @log.puts "kino: #{e.message}"
      @group ? @group.drain : sockets&.close
      1
    ensure
      restore_signals(previous) if previous
      @pidfile&.release
    end

    def stop_reason
      @successor_ready ? "restarted as pid #{@successor.pid}" : "SIG#{@stop_signal}"
    end

    def claim_group_pidfile
      path = @configuration[:pidfile]
      return unless path

      pidfile = Pidfile.claim(path)
      @log.write("kino: replaced stale pidfile #{path} (#{pidfile.replaced})\n") if pidfile.replaced
      pidfile
    end

    def supervise_until_stopped(group)
      until @stop_signal
        answer_group_signal(@signals.shift, group) until @signals.empty?
        group.supervise
        watch_successor
        take_over(group) if @handed_over
        sleep Launcher::POLL_INTERVAL
      end
    end

    # SIGUSR2: start the successor, unless one is booting already.
    def restart
      return @log.write("kino: SIGUSR2: a restart is under way already (pid #{@successor.pid})\n") if @successor
      return @log.write("kino: SIGUSR2 ignored: no command line to restart with\n") unless @restart_command

      @successor = Successor.start(@restart_command, @sockets, directory: @directory)
      @log.write("kino: SIGUSR2: restarting; the new kino is pid #{@successor.pid}, " \
                 "this one serves until it is ready\n")
    rescue Kino::Error => e
      @log.write("kino: SIGUSR2: #{e.message}; still serving\n")
    end

    # The old side of a restart: once the successor serves, it gets the
    # pidfile and this parent drains; a successor that died leaves things
    # as they were.
    def watch_successor
      return unless @successor

      outcome = @successor.poll
      if outcome == :ready
        @pidfile&.hand_over(@successor.pid)
        @successor_ready = true
        @stop_signal = "USR2"
      elsif outcome
        @log.write("kino: SIGUSR2: the new kino (pid #{@successor.pid}) #{outcome.last} before it was ready; " \
                   "still serving\n")
        @successor = nil
      end
    end

    # The new side of a restart: once every child serves, take the
    # pidfile and tell the predecessor; a child lost before that means the
    # new code does not boot, and this kino gives up.
    def take_over(group)
      raise Error, "restart: a process exited before the new code served; giving up" if group.lost_before_ready?
      return unless group.ready?

      @pidfile = Pidfile.adopt(@configuration[:pidfile]) if @configuration[:pidfile]
      Successor.say_ready(@handed_over[:ready])
      @handed_over = nil
    end

    # The parent answers USR1 with the group's line, read from the board
    # that holds every child's stats; HUP reopens the parent's log files
    # and each child's.
    def answer_group_signal(sig, group)
      case sig
      when "USR1"
        @log.write("kino: #{group_stats_line(group)}\n")
      when "USR2" then restart
      when "HUP"
        Native.logger_reopen_all
        group.forward("HUP")
        @log.write("kino: SIGHUP: forwarded to #{group.size} processes; still serving\n")
      else
        @log.write("kino: SIG#{sig} ignored; still serving (TERM, INT or QUIT stop the server)\n")
      end
    rescue IOError, SystemCallError, Kino::Error
      nil
    end

    def group_stats_line(group)
      stats = group.stats
      totals = stats.except(:processes)
      pairs = Launcher::STATS_KEYS.filter_map { |key| "#{key}=#{totals[key]}" if totals.key?(key) }
      "stats pid=#{Process.pid} processes=#{stats[:processes].size} #{pairs.join(' ')}"
    end

    def group_banner(group, sockets)
      mode = group.chosen&.mode
      threads = @configuration.threads_for(mode || :threaded)
      print_banner("* Processes: #{group.size} processes x #{@configuration[:workers]} workers x #{threads} threads " \
                   "(#{mode ? "mode #{mode}" : 'mode chosen in each process'}), " \
                   "#{@configuration[:io_threads]} I/O threads each; pids #{group.pids.compact.join(', ')}",
                   sockets.addresses, sockets.control&.first)
    end
  end
end
