# frozen_string_literal: true

require "kino/version"
require "kino/errors"
require "kino/configuration"

module Kino
  # What `rackup -s kino` and `rails server -u kino` call: the methods of a
  # Rack handler (`run`, `valid_options`), shared by the two registries that
  # find one. Rackup::Handler::Kino (lib/rackup/handler/kino.rb) and, where
  # Rack 2's registry is in use, Rack::Handler::Kino (lib/rack/handler/kino.rb)
  # extend this module and add nothing.
  #
  # The host has already built the app (with its own middleware); Kino
  # then starts as `kino` does (Kino::Launcher: banner, signals, graceful
  # stop), reading kino.rb or config/kino.rb when present. What the host
  # passes is mapped onto directives:
  #
  #   -p PORT (Port), -b/-o HOST (Host)   port, bind
  #   -O Threads=N (or Puma's MIN:MAX)    threads
  #   -O Workers=N                        workers
  #   -O Mode=auto|ractor|threaded        mode
  #   -O Config=FILE                      the config file, instead of the search
  #
  # Port and Host a user typed win over the config file, as the `kino`
  # flags do. Hosts pass their own defaults too (Rails port 3000, rackup
  # 9292), and those give way to the file. Rails says which options the
  # user gave (:user_supplied_options); rackup does not, so there a Port or
  # Host equal to rackup's default counts as its default.
  module RackHandler
    # The -O names and the directive each one sets.
    OPTION_DIRECTIVES = { Threads: :threads, Workers: :workers, Mode: :mode }.freeze
    # What rackup passes when the user gives no -p or -o (Rackup::Server#default_options).
    RACKUP_DEFAULT_PORT = "9292"

    # Serves +app+ until TERM, INT or QUIT, then stops gracefully. A server
    # that cannot start (a bad option, a port in use) ends the process with
    # status 1 after one "kino: ..." line: rackup and Rails ignore what
    # `run` returns, and would otherwise exit 0.
    def run(app, **options)
      # What exe/kino sets for the process, which from here on is a Kino
      # server: a banner that shows up at once through a pipe or a log
      # file, and no "Ractor is experimental" warning in the log.
      $stdout.sync = true
      Warning[:experimental] = false
      require "kino/launcher"
      status = begin
        Launcher.new(configuration_for(options), app: app).run
      rescue Kino::Error => e
        warn "kino: #{e.message}"
        1
      end
      exit(status) unless status.zero?
      status
    end

    # What `rackup -s kino --help` lists after "Server-specific options"
    # (rackup leaves out Host and Port, which it has flags for).
    def valid_options
      defaults = Configuration::DEFAULTS
      threads = Configuration::THREADS_PER_WORKER
      {
        "Host=HOST" => "Address to listen on (default: #{defaults[:bind]}, or the config file's bind)",
        "Port=PORT" => "Port to listen on (default: #{defaults[:port]}, or the config file's port)",
        "Threads=N" => "Threads per worker (default: #{threads[:ractor]} in ractor mode, " \
                       "#{threads[:threaded]} in threaded)",
        "Workers=N" => "Workers (default: number of cores)",
        "Mode=MODE" => "auto, ractor or threaded (default: #{defaults[:mode]})",
        "Config=FILE" => "Kino config file (default: #{Configuration::DEFAULT_CONFIG_FILES.join(', then ')})"
      }
    end

    # The Configuration a host's +options+ ask for, with its config file
    # loaded. Raises Kino::ConfigError for a bad value.
    def configuration_for(options)
      typed = {}
      host_defaults = {}
      { Port: :port, Host: :bind }.each do |key, directive|
        value = options[key]
        next if value.nil? || value.to_s.empty?

        (user_supplied?(key, value, options) ? typed : host_defaults)[directive] = value
      end
      OPTION_DIRECTIVES.each do |key, directive|
        value = options[key]
        next if value.nil?

        typed[directive] = directive == :threads ? value.to_s.split(":", 2) : value
      end
      Configuration.new(typed, config_file: options[:Config], host_defaults: host_defaults).load
    end

    private

    def user_supplied?(key, value, options)
      supplied = options[:user_supplied_options]
      return supplied.include?(key) if supplied

      value.to_s != rackup_default(key, options)
    end

    def rackup_default(key, options)
      return RACKUP_DEFAULT_PORT if key == :Port

      # Rackup::Server#default_options: localhost in development, else every interface.
      options.fetch(:environment, "development") == "development" ? "localhost" : "0.0.0.0"
    end
  end
end
