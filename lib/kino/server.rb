# frozen_string_literal: true

require_relative "errors"
require_relative "configuration"
require_relative "native"
require_relative "worker"
require_relative "thread_pool"

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
    MODES = %i[auto ractor threaded].freeze
    LOG_PUMP_INTERVAL = 0.1

    attr_reader :configuration, :mode, :addresses, :server_id

    def initialize(app, configuration = nil, log: $stderr, **options)
      raise ArgumentError, "app must respond to #call" unless app.respond_to?(:call)

      @app = app
      @configuration = configuration ||
                       Configuration.new({ port: 0 }.merge(options), search_default_files: false).load
      @log = log
      @server_id = nil
      @pool = nil
      @addresses = [].freeze
      @mode = resolve_mode(@configuration[:mode])
      @stopped = false
    end

    # Binds every address, starts the native I/O threads and the workers.
    # Returns self; the server runs in the background until #shutdown.
    def start
      raise Error, "server already started" if @server_id

      @server_id = Native.server_create(native_options)
      begin
        @addresses = Native.server_addresses(@server_id).freeze
        Native.server_start(@server_id)
        @pool = build_pool.start
      rescue StandardError
        Native.server_release(@server_id)
        @server_id = nil
        raise
      end
      @log_pump = start_log_pump
      @configuration[:after_boot]&.call
      self
    end

    # The TCP port of the first TCP address (useful with port 0).
    def port
      tcp = @addresses.find { |a| a.start_with?("tcp://") }
      tcp && Integer(tcp[/:(\d+)\z/, 1])
    end

    def workers
      @configuration[:workers]
    end

    def threads
      @configuration.threads_for(@mode)
    end

    def stats
      raise Error, "server not started" unless @server_id

      Native.server_stats(@server_id).merge(mode: @mode, workers: workers, threads: threads)
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
      stragglers = Native.server_stop(@server_id, timeout.to_f)
      @log.write("kino: shutdown timeout reached; #{stragglers} request(s) cut off\n") if stragglers.positive?
      Native.server_close_queue(@server_id)
      @pool&.join(5) || @pool&.kill
      stop_log_pump
      Native.server_release(@server_id)
      stragglers
    end

    private

    def resolve_mode(mode)
      case mode
      when :threaded, :auto then :threaded
      when :ractor
        raise Error, "mode :ractor is not available in this version of Kino yet; use :threaded or :auto"
      else raise ArgumentError, "unknown mode #{mode.inspect} (expected one of #{MODES.join(', ')})"
      end
    end

    def native_options
      c = @configuration
      {
        listen: c.listen_addresses,
        io_threads: c[:io_threads],
        backlog: c[:backlog],
        max_header_size: c[:max_header_size],
        max_uri_size: c[:max_uri_size],
        max_headers: c[:max_headers],
        max_body_size: c[:max_body_size] || 0
      }
    end

    def build_pool
      ThreadPool.new(@server_id, @app, workers: workers, threads: threads,
                                       on_error: @configuration[:on_error],
                                       after_worker_boot: @configuration[:after_worker_boot], log: @log)
    end

    # Native code never writes to stderr from an I/O thread; its lines wait
    # in a channel that this thread empties into the log.
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

    def pump_log(server_id)
      Native.server_drain_log(server_id).each { |line| @log.write("kino: #{line}\n") }
    rescue Kino::Error
      nil
    end
  end
end
