# frozen_string_literal: true

require "tmpdir"
require_relative "errors"
require_relative "configuration"
require_relative "native"
require_relative "request_loop"
require_relative "worker"
require_relative "thread_spawner"
require_relative "ractor_spawner"
require_relative "supervisor"
require_relative "mode_choice"
require_relative "pidfile"
require_relative "server_log"
require_relative "logger"
require_relative "process_board"

module Kino
  # The embedding API, and what the CLI runs underneath:
  #
  #   server = Kino::Server.new(app, port: 0, workers: 2, threads: 4).start
  #   server.port        # => 38113 (port 0 picks a free one)
  #   server.shutdown    # graceful: finishes what is in flight
  #
  # Options are the directives of kino.rb (see Kino::DSL), with one
  # difference: the port defaults to 0 (ephemeral) here, 9292 from the CLI.
  class Server
    LOG_PUMP_INTERVAL = 0.1
    WORKER_EXIT_GRACE = 2.0
    # Unwritten response bytes a connection may hold before respond_write
    # waits for the socket. Not a directive: Puma exposes no such knob.
    WRITE_HIGH_WATER = 1 << 20
    # Seconds from accept until a TLS handshake must be done, so clients
    # that connect and stall cannot pin connections. Not a directive (the
    # earlier Kino fixed it at 10 s too).
    TLS_HANDSHAKE_TIMEOUT = 10.0
    # How long a graceful stop waits for Kino::Logger lines to be written
    # (a log on a pipe nobody reads must not hold the stop for ever).
    LOG_FLUSH_TIMEOUT = 5.0

    attr_reader :configuration, :mode, :addresses, :server_id
    # Where the control plane listens ("tcp://127.0.0.1:9293" or
    # "unix:///path"), or nil without control_bind.
    attr_reader :control_address

    # In a process group (the `processes` directive) each child runs one
    # Server, given what the parent prepared: +listeners+, the sockets the
    # parent bound ([[address, fd], ...], served as they are; a configured
    # bind among them is not bound again), +process_index+ (the child's
    # index: the parent holds the pidfile, so the child never claims it),
    # +control_listener+ (the control plane's socket, [address, fd], bound
    # once for the group), +process_board+ (the group's shared stats) and +chosen+ (a
    # ModeChoice::Chosen the parent made after preloading the app).
    def initialize(app, configuration = nil, log: $stderr, listeners: [], control_listener: nil,
                   process_index: nil, process_board: nil, chosen: nil, **options)
      raise ArgumentError, "app must respond to #call" unless app.respond_to?(:call)

      @app = app
      @listeners = listeners.map { |address, fd| [address.to_s.dup.freeze, Integer(fd)].freeze }.freeze
      @control_listener = control_listener
      @process_index = process_index
      @process_board = process_board
      @chosen = chosen
      @configuration = configuration ||
                       Configuration.new({ port: 0 }.merge(options), search_default_files: false).load
      @log = ServerLog::Output.over(log)
      @server_id = nil
      @addresses = [].freeze
      @mode = nil
      @stopped = false
    end

    # Binds every address, starts the native I/O threads and the workers.
    # Returns self; the server runs in the background until #shutdown.
    def start
      raise Error, "server already started" if @server_id

      if @configuration[:processes] > 1 && @process_index.nil?
        raise ConfigError, "processes #{@configuration[:processes]}: Kino::Server serves in one process; " \
                           "run `kino` for a process group"
      end
      warn_not_in_effect
      claim_pidfile
      chosen = @chosen || ModeChoice.new(@app, @configuration, log: @log).choose
      @mode = chosen.mode
      @app = chosen.app
      hooks = chosen.hooks
      warn_ruby_max_cpu if @mode == :ractor
      @server_id = Native.server_create(native_options)
      @log.route_to(@server_id) if @log.descriptor
      begin
        @addresses = Native.server_addresses(@server_id).freeze
        @control_address = Native.server_control_address(@server_id)&.freeze
        Native.server_start(@server_id)
        @supervisor = build_supervisor(hooks).start
      rescue StandardError
        @log.route_to(nil)
        Native.server_release(@server_id)
        @server_id = nil
        raise
      end
      close_queue_at_exit(@server_id)
      @log_pump = start_log_pump
      @configuration[:after_boot]&.call
      self
    rescue StandardError
      release_pidfile unless @server_id # a start that failed gives the pidfile back
      raise
    end

    # The TCP port of the first TCP address (useful with port 0).
    def port
      @addresses.map { |address| ListenAddress.parse(address) }.find(&:tcp?)&.port
    end

    def workers
      @configuration[:workers]
    end

    def threads
      @configuration.threads_for(@mode || :threaded)
    end

    # A live snapshot, read natively (the control plane's /stats shows the
    # same): the pool (mode, workers, threads, workers_up, respawns,
    # quarantined), the counters (queued, in_flight, served, rejected,
    # timeouts, log_dropped, ...), `state` (:booting, :ready, :draining),
    # one row a worker thread in `slots` ({slot:, worker:, served:,
    # in_flight:, busy_ms:}) and the queue-wait histogram in `queue_wait`.
    # `lanes` says whether lanes are on; with them, `lane_dispatched`
    # counts the requests that went to a lane, and each slot's row has its
    # `lane_depth`.
    def stats
      raise Error, "server not started" unless @server_id

      Native.server_stats(@server_id)
    end

    # The control plane's TCP port (the real one for port 0), or nil.
    def control_port
      return nil unless @control_address

      address = ListenAddress.parse(@control_address)
      address.tcp? ? address.port : nil
    end

    # Loads the tls certificate and key again (SIGHUP in `kino`): new
    # connections get them, open ones keep theirs. Returns true; false, with
    # a log line saying why, when they do not load (the server keeps
    # serving with the ones it had).
    def reload_tls
      raise Error, "server not started" unless @server_id
      raise Error, "tls is not set: nothing to reload" unless @configuration[:tls]

      Native.server_reload_tls(@server_id)
      @log.write("kino: tls: certificate and key reloaded; new connections get them\n")
      true
    rescue ConfigError => e
      @log.write("kino: tls: reload failed, still serving the previous certificate: #{e.message}\n")
      false
    end

    # SIGHUP, after logrotate renamed them: every file a Kino::Logger
    # appends to is opened again by its name. Returns how many.
    def reopen
      Native.logger_reopen_all
    end

    def running?
      !@server_id.nil? && !@stopped
    end

    # Graceful stop: no new connections; queued and in-flight requests are
    # answered within `timeout` seconds (default: shutdown_timeout); then
    # the rest are cut off, with a log line saying how many. Returns the
    # number cut off.
    def shutdown(timeout = @configuration[:shutdown_timeout])
      return 0 if @stopped || @server_id.nil?

      @stopped = true
      stragglers = nil
      begin
        stragglers = Native.server_stop(@server_id, timeout.to_f)
        @log.write("kino: shutdown timeout reached; #{stragglers} request(s) cut off\n") if stragglers.positive?
      ensure
        # Also when an interrupt (Thread#raise, a signal's trap raising)
        # cut the drain short: the server stopped at once, and the rest is
        # let go on the way out, not leaked. Workers return once they
        # finish what they hold; a handler still busy (not in Kino.sleep,
        # which aborted) gets a little longer.
        drained = stragglers&.zero?
        release_stopped(drained ? timeout.to_f + WORKER_EXIT_GRACE : WORKER_EXIT_GRACE)
      end
      stragglers
    end

    private

    def release_stopped(worker_grace)
      Native.server_close_queue(@server_id)
      @supervisor&.stop(worker_grace)
      stop_log_pump
      Native.logger_flush_all(LOG_FLUSH_TIMEOUT)
      @log.route_to(nil)
      Native.server_release(@server_id)
      release_pidfile
    end

    def native_options
      c = @configuration
      {
        listen: addresses_to_bind, inherited_listeners: @listeners,
        io_threads: c[:io_threads],
        backlog: c[:backlog],
        max_header_size: c[:max_header_size],
        max_uri_size: c[:max_uri_size],
        max_headers: c[:max_headers],
        max_body_size: c[:max_body_size] || 0,
        write_high_water: WRITE_HIGH_WATER,
        # Bodies past body_buffer_size go to an unlinked file here ($TMPDIR or /tmp).
        spool_dir: Dir.tmpdir,
        body_memory_limit: c[:body_buffer_size],
        stream_request_bodies: c[:stream_request_bodies],
        intern_header_values: c[:intern_header_values],
        lanes: c[:lanes],
        min_body_rate: c[:min_body_rate] || 0,
        min_body_rate_window: c[:min_body_rate_window],
        max_spool_size: c[:max_spool_size] || 0,
        first_data_timeout: c[:first_data_timeout],
        persistent_timeout: c[:persistent_timeout],
        request_timeout: c[:request_timeout],
        queue_depth: c[:queue_depth],
        queue_timeout: c[:queue_timeout],
        batch: c[:batch],
        max_connections: c[:max_connections] || default_max_connections,
        log_fd: @log.descriptor || -1,
        worker_slots: Supervisor.slot_count(workers: workers, threads: threads,
                                            quarantine_max: c[:quarantine_max]),
        **tls_options(c[:tls]),
        mode: @mode.to_s, workers: workers, threads: threads,
        control_bind: @control_listener&.first || c.control_address, control_fd: @control_listener&.last || -1,
        control_token: c[:control_token],
        log_requests: c[:log_requests],
        log_format: c[:log_format],
        process_board: @process_board&.id, process_index: @process_index
      }
    end

    # A bind a parent (or systemd) opened already is served, not bound
    # again; given listeners and no bind configured, only they are served
    # (the default bind is for a server nobody handed a socket).
    def addresses_to_bind
      return @configuration.listen_addresses if @listeners.empty?
      return [] unless @configuration.set?(:bind)

      @configuration.listen_addresses - @listeners.map(&:first)
    end

    # Paths made absolute now, so a reload reads the same files whatever
    # the process's directory is by then; PEM text goes as it is.
    def tls_options(tls)
      source = ->(value) { value.nil? || value.include?("-----BEGIN") ? value : File.expand_path(value) }
      { tls_cert: source.call(tls&.fetch(:cert)), tls_key: source.call(tls&.fetch(:key)),
        tls_ca: source.call(tls&.fetch(:ca, nil)), tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT }
    end

    # From the open-file limit, keeping a tenth of it (at least 64
    # descriptors) for everything else the process opens: logs, database
    # connections, the app's files. 0 means no limit.
    def default_max_connections
      soft, = Process.getrlimit(:NOFILE)
      return 0 if soft == Process::RLIM_INFINITY

      [soft - [soft / 10, 64].max, 16].max
    end

    def build_supervisor(hooks)
      spawner_class = @mode == :ractor ? RactorSpawner : ThreadSpawner
      spawner = spawner_class.new(@server_id, @app, threads: threads, hooks: hooks)
      Supervisor.new(@server_id, spawner,
                     workers: workers, threads: threads, log: @log,
                     on_worker_exit: @configuration[:on_worker_exit],
                     quarantine_timeout: @configuration[:quarantine_timeout],
                     quarantine_max: @configuration[:quarantine_max])
    end

    # At process exit Ruby interrupts every ractor and waits for it; workers
    # parked in the native queue must see it closed to return on their own.
    def close_queue_at_exit(server_id)
      at_exit do
        Native.server_close_queue(server_id)
      rescue Kino::Error
        nil
      end
    end

    # Native code never writes to stderr from an I/O thread. For a log IO
    # without a descriptor its lines (labelled already) wait in a channel
    # that this thread empties into the log; with one, a native writer
    # thread writes them and this one only shares env values (below).
    def start_log_pump
      server_id = @server_id
      Thread.new do
        Thread.current.name = "kino-log"
        loop do
          pump_log(server_id)
          sleep LOG_PUMP_INTERVAL
        end
      end
    end

    def stop_log_pump
      @log_pump&.kill
      @log_pump&.join(1)
      pump_log(@server_id)
    end

    # A log that fails (stderr gone with its terminal, a full disk) loses
    # the line, never the pump: the pump also fills the env value cache
    # that worker ractors ask for.
    def pump_log(server_id)
      Native.server_drain_log(server_id).each do |line|
        @log.io.write(line)
      rescue IOError, SystemCallError
        nil
      end
    rescue Kino::Error
      nil
    end

    # Before binding: a second server started by mistake says whose
    # pidfile it is, rather than that its port is taken.
    def claim_pidfile
      path = @configuration[:pidfile]
      return unless path
      return if @process_index # a group's parent holds it

      @pidfile = Pidfile.claim(path)
      @log.write("kino: replaced stale pidfile #{path} (#{@pidfile.replaced})\n") if @pidfile.replaced
    end

    def release_pidfile
      @pidfile&.release
      @pidfile = nil
    end

    # Ruby 3.3 and later run the Ruby code of at most RUBY_MAX_CPU ractors at
    # once (8 when unset), whatever the CPUs: workers past it wait for a turn.
    # Ruby reads the variable once, at its own boot, so only the environment
    # Kino starts in can change it.
    def warn_ruby_max_cpu
      cap = AvailableParallelism.ruby_max_cpu
      return unless cap && workers > cap

      given = ENV.fetch("RUBY_MAX_CPU", nil)
      source = given.to_i.positive? ? "RUBY_MAX_CPU=#{given}" : "Ruby's default; RUBY_MAX_CPU is not set to a number"
      @log.write("kino: warning: #{workers} workers, but this Ruby runs no more than #{cap} of them at once " \
                 "(#{source}): set RUBY_MAX_CPU=#{workers} in the environment kino starts in, or lower workers\n")
    end

    # Here rather than in the CLI, so an embedding app hears of them too.
    def warn_not_in_effect
      Configuration::NOT_YET_IMPLEMENTED.each do |name|
        next if @configuration[name] == Configuration::DEFAULTS[name]

        @log.write("kino: warning: `#{name}` is not implemented in this version yet; it has no effect\n")
      end
      return unless @configuration[:lanes] && @configuration[:batch] > 1

      # A lane holds a few requests at most, taken one at a time.
      @log.write("kino: warning: `batch #{@configuration[:batch]}` has no effect with `lanes true`\n")
    end
  end
end
