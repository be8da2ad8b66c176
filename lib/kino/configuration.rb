# frozen_string_literal: true

require "kino/errors"
require "kino/available_parallelism"
require "kino/dsl"
require "kino/listen_address"

module Kino
  # Every setting of a Kino server, resolved from up to four sources in
  # order of precedence: options given to +new+ (the command line) over the
  # config file over +host_defaults+ (what a host such as `rails server`
  # passes without the user asking for it) over DEFAULTS.
  #
  #   configuration = Kino::Configuration.new({ port: 3000 }).load
  #   configuration[:workers]          # => 4 (say, from kino.rb)
  #   configuration.listen_addresses   # => ["tcp://127.0.0.1:3000"]
  #
  # The object only reads: loading a config never changes the process (see
  # #apply_environment! for the one setting that does, applied on request).
  class Configuration
    # The value of every directive when neither the config file nor the
    # command line sets it: the one place Ruby writes a default. Kino::DSL,
    # the `kino --init` template and README.md state them again for
    # readers, and spec/defaults_spec.rb holds them to this table.
    DEFAULTS = {
      bind: "127.0.0.1",
      port: 9292,
      processes: 1, # one process, no fork
      preload_app: true, # only matters with more than one process
      workers: Kino.available_parallelism,
      threads: nil, # THREADS_PER_WORKER of the mode: see #threads_for
      mode: :auto,
      io_threads: Kino.available_parallelism,
      rackup: "config.ru",
      environment: nil,
      pidfile: nil,
      queue_depth: 1024,
      queue_timeout: 5.0,
      request_timeout: nil,
      max_connections: nil, # from the open-file limit
      max_body_size: 52_428_800, # 50 MiB
      body_buffer_size: 114_688, # 112 KiB in memory, then spooled
      stream_request_bodies: false,
      intern_header_values: false,
      min_body_rate: 1024, # bytes/s
      min_body_rate_window: 5,
      max_spool_size: 1_073_741_824, # 1 GiB
      max_header_size: 65_536, # the whole request head
      max_uri_size: 8192,
      max_headers: 100,
      first_data_timeout: 30,
      persistent_timeout: 20,
      backlog: 1024,
      shutdown_timeout: 30,
      batch: 1,
      lanes: false,
      log_requests: false,
      log_format: :text,
      io_shards: false,
      http2: false, # HTTP/1.1 only until HTTP/2 is built (the earlier Kino's default was true)
      max_workers: nil, # a fixed pool of `workers`
      scale_down_after: 30,
      tls: nil,
      control_bind: nil,
      control_token: nil,
      quarantine_timeout: nil,
      quarantine_max: nil, # the number of workers
      on_error: nil,
      after_boot: nil,
      after_worker_boot: nil,
      after_request_complete: nil,
      on_worker_exit: nil,
      before_fork: nil,
      after_fork: nil
    }.freeze

    # Directives that load and are checked but do nothing yet in this
    # version, so a config written for the earlier Kino still loads. The
    # server warns at start about each one set to anything but its default.
    NOT_YET_IMPLEMENTED = %i[
      io_shards http2 max_workers scale_down_after
    ].freeze

    # Searched in this order, relative to the current directory, when no
    # config file is named.
    DEFAULT_CONFIG_FILES = ["kino.rb", "config/kino.rb"].freeze

    THREADS_PER_WORKER = { ractor: 1, threaded: 3 }.freeze

    # The absolute path of the config file #load evaluated, or nil.
    attr_reader :config_file

    # +cli_options+ uses directive names as keys ({ port: 3000,
    # rackup: "app.ru" }); nil values count as not given. They are checked
    # here, so a bad one raises Kino::ConfigError at once. +config_file+
    # names a file that must exist; without one, +search_default_files+
    # looks for DEFAULT_CONFIG_FILES. +host_defaults+ has the same form as
    # +cli_options+ and gives way to the config file: Rails' port 3000 when
    # the user did not type `-p` (see Kino::RackHandler).
    def initialize(cli_options = {}, config_file: nil, search_default_files: true, host_defaults: {})
      # Captured once: relative paths mean what they meant when Kino started.
      @working_directory = Dir.pwd.freeze
      @requested_config_file = config_file
      @search_default_files = search_default_files
      @host_settings = DSL.apply_options(host_defaults, {}).freeze
      @cli_settings = DSL.apply_options(cli_options, {}).freeze
      @file_settings = {}.freeze
      @config_file = nil
      @values = resolve
    end

    # Evaluates the config file, if there is one, and returns self. Raises
    # Kino::ConfigError naming the file and line of any problem in it, or
    # naming a config file that was asked for and does not exist.
    def load
      path, display_path = find_config_file
      file_settings = {}
      DSL.evaluate_file(path, file_settings, display_path: display_path) if path
      @file_settings = file_settings.freeze
      @config_file = path&.freeze
      @values = resolve
      self
    end

    # The resolved value of one directive. Raises KeyError for a name that
    # is not a directive, so a typo in the caller fails loudly.
    #
    # Binds resolve to a frozen Array of the addresses as written (the
    # file's, the command line's, or [DEFAULTS[:bind]]); #listen_addresses
    # gives them in a form ready to listen on.
    def [](key)
      @values.fetch(key)
    end

    # Whether the config file or the command line set +key+ (rather than
    # leaving it to DEFAULTS).
    def set?(key)
      @cli_settings.key?(key) || @file_settings.key?(key)
    end

    # Every resolved value, keyed as DEFAULTS.
    def to_h
      @values
    end

    # The rackup file to load.
    def rackup
      self[:rackup]
    end

    # Threads per worker in +mode+ (:ractor or :threaded; resolve :auto
    # first): the +threads+ directive if set, otherwise THREADS_PER_WORKER.
    def threads_for(mode)
      default = THREADS_PER_WORKER.fetch(mode.is_a?(String) ? mode.to_sym : mode) do
        raise ArgumentError, "threads_for needs :ractor or :threaded (got #{mode.inspect})"
      end
      self[:threads] || default
    end

    # The addresses to listen on, each "tcp://HOST:PORT" (IPv6 hosts in
    # brackets) or "unix:///absolute/path". Binds without their own port use
    # the +port+ directive. A relative unix socket path is made absolute
    # against the config file's directory when it comes from the file, and
    # against the working directory when it comes from the command line or
    # there is no file.
    def listen_addresses
      base_directory = if @config_file && !@cli_settings.key?(:bind)
                         File.dirname(@config_file)
                       else
                         @working_directory
                       end
      self[:bind].map do |address|
        ListenAddress.parse(address).resolve(default_port: self[:port], base_directory: base_directory).to_s
      end.uniq.freeze
    end

    # control_bind as the native side takes it ("tcp://HOST:PORT" or
    # "unix:///absolute/path", a relative path from the config file's
    # directory), or nil when the control plane is off.
    def control_address
      address = self[:control_bind]
      return nil unless address

      base_directory = @config_file ? File.dirname(@config_file) : @working_directory
      ListenAddress.parse(address).resolve(default_port: nil, base_directory: base_directory).to_s
    end

    # Sets RACK_ENV from the +environment+ directive unless +env+ already
    # has a RACK_ENV: the deploy's own setting wins. The launcher calls this
    # just before loading the app; loading a config never does. Returns self.
    def apply_environment!(env = ENV)
      environment = self[:environment]
      env["RACK_ENV"] = environment if environment && env["RACK_ENV"].to_s.empty?
      self
    end

    private

    # Returns [absolute path, path as the user knows it], or nil.
    def find_config_file
      if @requested_config_file
        path = File.expand_path(@requested_config_file, @working_directory)
        raise ConfigError, "config file not found: #{@requested_config_file}" unless File.file?(path)

        return [path, @requested_config_file.to_s]
      end
      return unless @search_default_files

      DEFAULT_CONFIG_FILES.each do |name|
        path = File.join(@working_directory, name)
        return [path, name] if File.file?(path)
      end
      nil
    end

    def resolve
      values = DEFAULTS.merge(@host_settings, @file_settings, @cli_settings)
      bind = @cli_settings[:bind] || @file_settings[:bind] || @host_settings[:bind] || DEFAULTS[:bind]
      values[:bind] = Array(bind).freeze
      values.freeze
    end
  end
end
