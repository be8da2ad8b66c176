# frozen_string_literal: true

require "rack"
require_relative "errors"
require_relative "server"
require_relative "server_log"
require_relative "systemd_notifier"
require_relative "listen_sockets"
require_relative "group_mode"
require_relative "worker_hooks"

module Kino
  # What `kino` does once its configuration is loaded: load the app, start
  # a Server, print the banner, and turn signals into a graceful stop;
  # under systemd (NOTIFY_SOCKET), say when it serves and when it drains.
  #
  # The main thread only ever sleeps in short slices here: Ruby runs signal
  # handlers on the main thread, and one blocked in a native wait or a
  # Ractor.take would never run them.
  #
  # The signals Kino traps (Ruby's default would end the process on each
  # but TTIN and TTOU, which would stop it):
  #
  # - TERM, INT, QUIT: graceful stop; a second one exits at once.
  # - USR1: one stats line to the log (stderr); the server goes on.
  # - HUP: the log files of Kino::Logger are reopened (Server#reopen), for
  #   logrotate; with tls set, the certificate and key are loaded again
  #   (Server#reload_tls).
  # - USR2: with `processes` above 1, a zero-downtime restart (Successor);
  #   in one process, logged and ignored.
  # - ALRM: logged, ignored (Ruby's default would end the process).
  # - TTIN, TTOU: ignored without a handler. The kernel sends them itself to
  #   a background process that touches its terminal; with a handler
  #   installed it would send them again and again, and a handler that logs
  #   would write to the terminal once more.
  class Launcher
    include GroupMode

    STOP_SIGNALS = %w[TERM INT QUIT].freeze
    # Signals that are answered in the log; the server keeps serving.
    LOGGED_SIGNALS = %w[USR1 HUP USR2 ALRM].freeze
    IGNORED_SIGNALS = %w[TTIN TTOU].freeze
    POLL_INTERVAL = 0.1
    STATS_KEYS = %i[mode workers threads batch connections_open queued in_flight served rejected timeouts
                    parse_errors respawns quarantined log_dropped logger_dropped lane_dispatched].freeze

    # +app+: a Rack app a host has already built (`rackup`, `rails server`);
    # without one, the configuration's rackup file is loaded.
    # +restart_command+ is `kino`'s own command line (the script and its
    # arguments), which SIGUSR2 starts again in a process group; nil (an
    # embedding) leaves USR2 ignored.
    def initialize(configuration, stdout: $stdout, stderr: $stderr, app: nil, restart_command: nil)
      @configuration = configuration
      @app = app
      @restart_command = restart_command
      @directory = Dir.pwd
      @stdout = stdout
      @stderr = stderr
      @log = ServerLog::Output.over(stderr) # what the server and the signals say
      @signals = [] # pending signals that do not stop the server, oldest first
      @stop_signal = nil
    end

    # Serves until SIGTERM, SIGINT or SIGQUIT; returns the process exit status.
    def run
      @configuration.apply_environment!
      # Pings from here on, as Puma's do: a slow app boot is what
      # TimeoutStartSec bounds, not the watchdog.
      systemd = SystemdNotifier.new(log: @log).start_watchdog
      handed_over = Successor.handed_over
      activated = ListenSockets.from_systemd
      return run_group(systemd, activated, handed_over) if @configuration[:processes] > 1 || handed_over

      app = @app || load_app
      server = Server.new(app, @configuration, log: @log, listeners: activated)
      previous = trap_signals
      server.start
      banner(server)
      notify_ready(systemd, server)
      serve_until_stopped(server)
      @stdout.puts "- Gracefully stopping (SIG#{@stop_signal}), waiting for requests to finish"
      systemd.stopping("Gracefully stopping (SIG#{@stop_signal})")
      server.shutdown
      @stdout.puts "- Goodbye!"
      0
    rescue Kino::Error => e
      @log.puts "kino: #{e.message}"
      1
    ensure
      restore_signals(previous) if previous
      systemd&.stop
    end

    # `kino --check`: whether `mode :auto` runs the app in ractors, and if
    # not, every reason, one per line: what stands in the way (with a
    # hint), and each object the app made that :ractor mode would freeze,
    # with where it was made (allocations are traced while the rackup file
    # loads, which only a check pays for). It changes nothing: the probing
    # (which freezes objects) happens in a forked child. Exit status 0 when
    # :auto takes :ractor, 1 when not, so CI can run it.
    def check
      @configuration.apply_environment!
      require "objspace"
      app = ObjectSpace.trace_object_allocations { load_app }
      hooks = WorkerHooks.of(@configuration)
      ractor_check = RactorCheck.new(RactorPreparation.new(app, hooks))
      diagnosis = ractor_check.diagnose
      rackup = @configuration.rackup
      if diagnosis.clean?
        @stdout.puts "kino --check: #{rackup} can run in :ractor mode"
        return 0
      end

      report_check(rackup, diagnosis, ractor_check)
      1
    rescue Kino::Error => e
      @stderr.puts "kino: #{e.message}"
      1
    end

    private

    def report_check(rackup, diagnosis, ractor_check)
      blockers = diagnosis.blockers + diagnosis.isolation
      frozen = diagnosis.app_state.size + diagnosis.unlisted
      counts = []
      counts << "#{blockers.size} blocker#{'s' unless blockers.size == 1}" unless blockers.empty?
      counts << "#{frozen} object#{'s' unless frozen == 1} the app made would be frozen" if frozen.positive?
      @stdout.puts "kino --check: #{rackup} cannot run in :ractor mode (#{counts.join(', ')}):"
      blockers.each { |b| @stdout.puts "  - #{b}" }
      ractor_check.app_state_lines(diagnosis).each { |line| @stdout.puts line }
      if blockers.empty?
        @stdout.puts "With `mode :auto` (the default) it runs in :threaded mode instead; " \
                     "`mode :ractor` freezes these and runs it in ractors."
      else
        @stdout.puts "With `mode :auto` (the default) it runs in :threaded mode instead."
      end
    end

    def load_app
      path = @configuration.rackup
      raise ConfigError, "rackup file not found: #{path}" unless File.file?(path)

      app = Rack::Builder.parse_file(path)
      app = app.first if app.is_a?(Array) # Rack 2 returned [app, options]
      raise ConfigError, "#{path} does not define a Rack app (use `run app` in it)" unless app.respond_to?(:call)

      app
    rescue SyntaxError, StandardError => e
      raise if e.is_a?(Kino::Error)

      where = (e.backtrace_locations || []).find { |l| l.path&.end_with?(File.basename(path)) }
      at = where ? "#{path}:#{where.lineno}" : path
      raise ConfigError, "#{at}: could not load the app: #{e.class}: #{e.message}"
    end

    # A handler runs in trap context, where a Mutex cannot be taken (the
    # stats do), so it only records the signal; the main thread answers it
    # between its short sleeps. A second stop signal exits at once.
    def trap_signals
      previous = (STOP_SIGNALS + LOGGED_SIGNALS).to_h do |sig|
        [sig, Signal.trap(sig) do
          if STOP_SIGNALS.include?(sig)
            if @stop_signal
              @group&.kill_all
              exit!(1)
            end
            @stop_signal = sig
          else
            @signals << sig
          end
        end]
      end
      IGNORED_SIGNALS.each { |sig| previous[sig] = Signal.trap(sig, "IGNORE") }
      previous
    end

    def serve_until_stopped(server)
      until @stop_signal
        answer_signal(@signals.shift, server) until @signals.empty?
        sleep POLL_INTERVAL
      end
    end

    def answer_signal(sig, server)
      server.reload_tls if sig == "HUP" && @configuration[:tls] # new connections get the new certificate

      text = case sig
             when "USR1" then stats_line(server)
             when "HUP" then reopen_line(server)
             when "USR2" then "SIGUSR2 ignored: restarting in place is not supported yet"
             else "SIG#{sig} ignored"
             end
      suffix = sig == "USR1" ? "" : "; still serving (TERM, INT or QUIT stop the server)"
      # One write per line: the workers' lines go to the same log.
      @log.write("kino: #{text}#{suffix}\n")
    rescue IOError, SystemCallError
      nil # stderr is gone (a closed terminal sends HUP): serving matters more than the line
    end

    def reopen_line(server)
      "SIGHUP: reopened #{server.reopen} log file(s)"
    rescue Kino::Error => e
      "SIGHUP: reopening log files failed: #{e.message}"
    end

    # The earlier Kino's `kill -USR1` line: key=value pairs, one line.
    def stats_line(server)
      stats = server.stats
      pairs = STATS_KEYS.filter_map { |key| "#{key}=#{stats[key]}" if stats.key?(key) }
      "stats pid=#{Process.pid} #{pairs.join(' ')}"
    rescue Kino::Error => e
      "stats unavailable: #{e.message}"
    end

    def restore_signals(previous)
      previous.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end

    # With tls every bind serves HTTPS: tcp://HOST:PORT shows as the URL a
    # client uses, a unix socket says it is TLS.
    def listening_label(address)
      return address unless @configuration[:tls]

      address.start_with?("tcp://") ? address.sub("tcp://", "https://") : "#{address} (TLS)"
    end

    def notify_ready(systemd, server)
      return unless systemd.enabled?

      @stdout.puts "* systemd: #{systemd.description}"
      systemd.ready("Kino #{Kino::VERSION}: #{server.workers} workers x #{server.threads} threads (#{server.mode}), " \
                    "listening on #{server.addresses.join(', ')}")
    end

    def banner(server)
      print_banner("* Mode: #{server.mode}, #{server.workers} workers x #{server.threads} threads, " \
                   "#{@configuration[:io_threads]} I/O threads", server.addresses, server.control_address)
    end

    # The boot lines of one process or of a group (GroupMode): the same
    # around the line that says what runs.
    def print_banner(topology, addresses, control_address)
      yjit = defined?(RubyVM::YJIT) && RubyVM::YJIT.enabled? ? "on" : "off"
      @stdout.puts "Kino #{Kino::VERSION} (ruby #{RUBY_VERSION}p#{RUBY_PATCHLEVEL}, YJIT #{yjit}), pid #{Process.pid}"
      @stdout.puts topology
      addresses.each { |a| @stdout.puts "* Listening on #{listening_label(a)}" }
      @stdout.puts "* Control plane on #{control_address}" if control_address
      @stdout.puts "Use Ctrl-C to stop"
    end
  end
end
