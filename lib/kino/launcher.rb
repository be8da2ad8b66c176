# frozen_string_literal: true

require "rack"
require_relative "errors"
require_relative "server"

module Kino
  # What `kino` does once its configuration is loaded: load the app, start
  # a Server, print the banner, and turn signals into a graceful stop.
  #
  # The main thread only ever sleeps in short slices here: Ruby runs signal
  # handlers on the main thread, and one blocked in a native wait or a
  # Ractor.take would never run them.
  class Launcher
    SIGNALS = %w[INT TERM].freeze
    POLL_INTERVAL = 0.1

    def initialize(configuration, stdout: $stdout, stderr: $stderr)
      @configuration = configuration
      @stdout = stdout
      @stderr = stderr
      @signals = []
    end

    # Serves until SIGINT or SIGTERM; returns the process exit status.
    def run
      @configuration.apply_environment!
      app = load_app
      warn_not_yet_implemented
      server = Server.new(app, @configuration, log: @stderr)
      previous = trap_signals
      server.start
      write_pidfile
      banner(server)
      sleep POLL_INTERVAL while @signals.empty?
      @stdout.puts "- Gracefully stopping (SIG#{@signals.first}), waiting for requests to finish"
      server.shutdown
      @stdout.puts "- Goodbye!"
      0
    rescue Kino::Error => e
      @stderr.puts "kino: #{e.message}"
      1
    ensure
      remove_pidfile
      restore_signals(previous) if previous
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
      hooks = { on_error: @configuration[:on_error], after_worker_boot: @configuration[:after_worker_boot] }
      preparation = RactorPreparation.new(app, hooks)
      diagnosis = preparation.diagnose
      rackup = @configuration.rackup
      if diagnosis.clean?
        @stdout.puts "kino --check: #{rackup} can run in :ractor mode"
        return 0
      end

      report_check(rackup, diagnosis, preparation)
      1
    rescue Kino::Error => e
      @stderr.puts "kino: #{e.message}"
      1
    end

    private

    def report_check(rackup, diagnosis, preparation)
      blockers = diagnosis.blockers
      frozen = diagnosis.app_state.size + diagnosis.unlisted
      counts = []
      counts << "#{blockers.size} blocker#{'s' unless blockers.size == 1}" unless blockers.empty?
      counts << "#{frozen} object#{'s' unless frozen == 1} the app made would be frozen" if frozen.positive?
      @stdout.puts "kino --check: #{rackup} cannot run in :ractor mode (#{counts.join(', ')}):"
      blockers.each { |b| @stdout.puts "  - #{b}" }
      preparation.app_state_lines(diagnosis).each { |line| @stdout.puts line }
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

    def warn_not_yet_implemented
      defaults = Configuration::DEFAULTS
      Configuration::NOT_YET_IMPLEMENTED.each do |name|
        next if @configuration[name] == defaults[name]

        @stderr.puts "kino: warning: `#{name}` is not implemented in this version yet; it has no effect"
      end
    end

    # A first signal asks for a graceful stop; a second one while stopping
    # exits at once.
    def trap_signals
      SIGNALS.to_h do |sig|
        [sig, Signal.trap(sig) do
          exit!(1) unless @signals.empty?
          @signals << sig
        end]
      end
    end

    def restore_signals(previous)
      previous.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end

    def write_pidfile
      path = @configuration[:pidfile]
      File.write(path, "#{Process.pid}\n") if path
    end

    def remove_pidfile
      path = @configuration[:pidfile]
      File.delete(path) if path && File.file?(path) && File.read(path).to_i == Process.pid
    rescue SystemCallError
      nil
    end

    def banner(server)
      yjit = defined?(RubyVM::YJIT) && RubyVM::YJIT.enabled? ? "on" : "off"
      @stdout.puts "Kino #{Kino::VERSION} (ruby #{RUBY_VERSION}p#{RUBY_PATCHLEVEL}, YJIT #{yjit}), pid #{Process.pid}"
      @stdout.puts "* Mode: #{server.mode}, #{server.workers} workers x #{server.threads} threads, " \
                   "#{@configuration[:io_threads]} I/O threads"
      server.addresses.each { |a| @stdout.puts "* Listening on #{a}" }
      @stdout.puts "Use Ctrl-C to stop"
    end
  end
end
