# frozen_string_literal: true

require "kino/errors"
require "kino/listen_address"
require "kino/directive_checks"

module Kino
  # The methods a config file (kino.rb) can call, one per directive.
  #
  #   # kino.rb
  #   workers 4
  #   threads 2
  #   bind "tcp://0.0.0.0:8080"
  #   on_error { |exception, env| warn "#{exception.class} on #{env["PATH_INFO"]}" }
  #
  # Kino::Configuration evaluates the file with instance_eval on a fresh DSL
  # object. Each directive checks its value where it is written, because only
  # there do we know which file and line to blame, and stores it in a
  # settings Hash that the Configuration owns and merges. The DSL knows
  # nothing else about the Configuration. The checks directives share are
  # in Kino::DirectiveChecks, and addresses are read by Kino::ListenAddress.
  #
  # Every public instance method of this class is a directive, and nothing
  # else is (DSL.directives). The same methods check the options given on
  # the command line or to Configuration.new (DSL.apply_options), so a value
  # is accepted or refused the same way wherever it comes from.
  #
  # Values read from the environment usually arrive as Strings
  # (`workers ENV.fetch("WEB_CONCURRENCY", 2)`), so Integer directives also
  # accept a decimal String and numeric ones any String Float() reads.
  class DSL
    include DirectiveChecks

    MODES = %i[auto ractor threaded].freeze
    LOG_FORMATS = %i[text json].freeze

    # The names a config file may call.
    def self.directives
      public_instance_methods(false)
    end

    # Evaluates the Ruby file at +path+ and stores what it sets in +settings+.
    # Errors name the file as +display_path+ (how the user wrote it).
    # Raises Kino::ConfigError for anything that goes wrong in the file,
    # with "<display_path>:<line>: " in front of the message.
    def self.evaluate_file(path, settings, display_path: path)
      source_path = File.expand_path(path)
      source = begin
        File.read(source_path)
      rescue SystemCallError => e
        raise ConfigError, "cannot read config file #{display_path}: #{e.message}"
      end
      dsl = new(settings, source_path: source_path, display_path: display_path)
      # The absolute path makes __FILE__ and __dir__ inside the file right
      # even if the process changes directory later; messages use the
      # display path instead.
      dsl.instance_eval(source, source_path, 1)
      dsl.__send__(:seal)
      settings
    rescue ConfigError
      raise
    rescue SyntaxError => e
      # The parser's message already starts with "<path>:<line>: ".
      message = e.message.chomp
      message = message.sub(source_path, display_path) if message.start_with?("#{source_path}:")
      raise ConfigError, message
    rescue StandardError, ScriptError => e
      raise ConfigError, "#{location_of(e, source_path, display_path)}#{describe_exception(e)}"
    end

    # Checks each option (a Hash keyed by directive name, as the CLI builds
    # it) with the directive of the same name and stores it in +settings+.
    # A nil value means "not given", the way Rack handlers pass unset
    # options. +bind+ may be one address or an Array of them, +threads+ an
    # Integer or [min, max], +tls+ a Hash with :cert and :key (and :ca).
    def self.apply_options(options, settings)
      dsl = new(settings)
      options.each do |name, value|
        next if value.nil?

        dsl.__send__(:apply_option, name.to_sym, value)
      end
      settings
    end

    def self.location_of(exception, source_path, display_path)
      line = exception.backtrace_locations&.find { |location| location.path == source_path }&.lineno
      line ? "#{display_path}:#{line}: " : "#{display_path}: "
    end
    private_class_method :location_of

    # A wrong number of arguments to a directive is raised inside this file;
    # naming the directive says which call was wrong. base_label is the bare
    # method name on every Ruby (label is "Kino::DSL#tls" from 3.4 on).
    def self.describe_exception(exception)
      innermost = exception.backtrace_locations&.first
      directive = innermost&.base_label if innermost&.path == __FILE__
      if exception.is_a?(ArgumentError) && directive && directives.include?(directive.to_sym)
        "#{directive}: #{exception.message}"
      else
        "#{exception.message} (#{exception.class})"
      end
    end
    private_class_method :describe_exception

    # +source_path+ is the file being evaluated (nil for options), used to
    # find the line of a bad call; +display_path+ is how messages name it.
    def initialize(settings, source_path: nil, display_path: source_path)
      @settings = settings
      @source_path = source_path&.dup&.freeze
      @display_path = display_path&.dup&.freeze
    end

    # Adds an address to listen on. Each call adds one, so a server can
    # listen on several addresses at once. A plain host (or a tcp:// address
    # without a port) listens on the +port+ directive's port; a tcp:// address
    # with its own port keeps it. A relative unix:// path is taken from the
    # config file's directory. IPv6 addresses may be written with or without
    # brackets ("::1", "[::1]"); to give one a port, use brackets.
    # `kino --bind` on the command line replaces every bind of the file.
    #
    # The default is "127.0.0.1" (this machine only; bind "0.0.0.0" to
    # accept connections from other machines).
    #
    # @example All IPv4 interfaces, on the port of the +port+ directive
    #   bind "0.0.0.0"
    # @example An explicit port, and IPv6 loopback as well
    #   bind "tcp://0.0.0.0:8080"
    #   bind "[::1]:8080"
    # @example A unix socket, its path relative to this config file
    #   bind "unix://tmp/sockets/kino.sock"
    #
    def bind(address)
      listen_address(:bind, address)
      (@settings[:bind] ||= []) << address.dup.freeze
    end

    # The TCP port for binds that do not name their own port.
    #
    # The default is 9292.
    #
    # @example
    #   port 3000
    # @example From the environment, as most platforms hand it out
    #   port ENV.fetch("PORT", 9292)
    #
    def port(number)
      port = to_integer(number)
      invalid!("port must be an Integer from 0 to 65535 (got #{number.inspect})") unless port&.between?(0, 65_535)
      @settings[:port] = port
    end

    # How many workers serve requests: ractors in :ractor mode, groups of
    # threads in :threaded mode. In :ractor mode each worker runs Ruby in
    # parallel, so more workers than CPUs only adds contention.
    #
    # The default is the available CPUs, Kino.available_parallelism: those
    # the process's affinity mask allows, capped by its cgroup's CPU quota
    # (a container's CPU limit, rounded up).
    #
    # @example
    #   workers 4
    # @example From the environment, as Heroku-style platforms set it
    #   workers ENV.fetch("WEB_CONCURRENCY", 2)
    #
    def workers(count)
      @settings[:workers] = positive_integer(:workers, count)
    end

    # Server processes forked from one parent: each serves every bind on
    # the sockets the parent opened once, with its own native core and its
    # own `workers` (in :threaded or :ractor mode), so an app that cannot
    # run in ractors still uses every core. The parent only supervises: it
    # replaces a child that dies and drains them all on TERM. This is what
    # Puma calls `workers` (its cluster mode); Kino's `workers` are inside
    # each process.
    #
    # The default is 1: one process, no fork.
    #
    # @example
    #   processes 4
    # @example From the environment
    #   processes ENV.fetch("WEB_CONCURRENCY", 2)
    #
    def processes(count)
      @settings[:processes] = positive_integer(:processes, count)
    end

    # With more than one process: load the app once in the parent, before
    # forking, so the children share its memory copy-on-write and boot at
    # once (Puma's preload_app!). false loads it in each child after
    # after_fork, for apps that open connections or threads while they
    # load. With one process it changes nothing.
    #
    # The default is true.
    #
    # @example
    #   preload_app false
    #
    def preload_app(enabled = true)
      @settings[:preload_app] = boolean(:preload_app, enabled)
    end

    # Threads per worker. A worker runs a fixed number of threads, so Puma's
    # `threads min, max` form is accepted (a Puma config loads unchanged)
    # and the max is used.
    #
    # The default is 1 in :ractor mode and 3 in :threaded mode.
    #
    # @example
    #   threads 2
    # @example Puma's form: runs 5 threads per worker
    #   threads 1, 5
    #
    def threads(count, max = nil)
      if max.nil?
        @settings[:threads] = positive_integer(:threads, count)
      else
        minimum = to_integer(count)
        maximum = to_integer(max)
        unless minimum && maximum && minimum >= 0 && maximum.positive? && minimum <= maximum
          invalid!("threads min, max needs Integers with 0 <= min <= max and max >= 1 " \
                   "(got #{count.inspect}, #{max.inspect})")
        end
        @settings[:threads] = maximum
      end
    end

    # How the app runs: :ractor (each worker in its own Ractor, Ruby runs in
    # parallel), :threaded (worker threads in the main ractor, one Ruby
    # thread at a time, like Puma without workers), or :auto (:ractor when
    # sharing the app freezes nothing it made and may change, otherwise
    # :threaded with a warning that says why; `kino --check` tells you in
    # advance). :ractor freezes what the app holds, and says so at boot.
    #
    # The default is :auto.
    #
    # @example
    #   mode :threaded
    #
    def mode(name)
      @settings[:mode] = one_of(:mode, name, MODES)
    end

    # Native threads that accept connections and parse HTTP. They never run
    # Ruby, so they do not compete with workers for the GVL, only for CPU.
    # `tokio_threads`, the earlier name, does the same.
    #
    # The default is the available CPUs, as for workers
    # (Kino.available_parallelism).
    #
    # @example
    #   io_threads 2
    #
    def io_threads(count)
      @settings[:io_threads] = positive_integer(:io_threads, count)
    end
    alias tokio_threads io_threads

    # The rackup file that builds the application. A rackup file given on
    # the command line (`kino app.ru`) wins.
    #
    # The default is "config.ru".
    #
    # @example
    #   rackup "config/app.ru"
    #
    def rackup(path)
      @settings[:rackup] = path_string(:rackup, path)
    end

    # Sets RACK_ENV to +name+ before the application loads, unless RACK_ENV
    # is already set in the process environment: the deploy's own setting
    # wins over the file. This only records the value; the launcher sets
    # RACK_ENV (Configuration#apply_environment!) just before loading the
    # app, so reading a config, `kino --check` and the specs change nothing.
    #
    # The default is nil (RACK_ENV is left alone).
    #
    # @example
    #   environment "production"
    #
    def environment(name)
      unless (name.is_a?(String) || name.is_a?(Symbol)) && !name.empty?
        invalid!("environment must be a non-empty String (got #{name.inspect})")
      end
      @settings[:environment] = name.to_s.dup.freeze
    end

    # Writes the server's process id to +path+ when it starts (from the CLI
    # and from an embedded Kino::Server alike), and removes it at the stop
    # while it still holds that pid. The file is claimed exclusively: while
    # the process it names is alive the server does not start; a stale one
    # is replaced; a symlink at +path+ is refused, never written through.
    #
    # The default is nil (no pidfile).
    #
    # @example
    #   pidfile "tmp/pids/kino.pid"
    #
    def pidfile(path)
      @settings[:pidfile] = path_string(:pidfile, path)
    end

    # The bound of the queue between the I/O threads and the workers. When
    # it is full, a new request waits up to +queue_timeout+ for space and
    # then gets 503 Service Unavailable: a bounded queue turns overload into
    # quick refusals instead of ever-growing latency.
    #
    # The default is 1024.
    #
    # @example
    #   queue_depth 256
    #
    def queue_depth(count)
      @settings[:queue_depth] = positive_integer(:queue_depth, count)
    end

    # Seconds a request may wait for space in a full queue before it gets
    # 503. 0 refuses at once.
    # The default is 5.0.
    #
    # @example
    #   queue_timeout 1.5
    #
    def queue_timeout(seconds)
      @settings[:queue_timeout] = non_negative_seconds(:queue_timeout, seconds)
    end

    # Seconds the app may take on a request before the client gets 504
    # Gateway Timeout. The handler itself runs on (Ruby cannot safely stop
    # it); only the client stops waiting.
    # The default is nil (no limit).
    #
    # @example
    #   request_timeout 30
    #
    def request_timeout(seconds)
      @settings[:request_timeout] = optional_positive_seconds(:request_timeout, seconds)
    end

    # Open client connections at most. Beyond it, new connections wait in
    # the kernel's listen backlog instead of costing memory here.
    # The default is nil: derived from the open-file limit (ulimit -n).
    #
    # @example
    #   max_connections 4096
    #
    def max_connections(count)
      @settings[:max_connections] = count.nil? ? nil : positive_integer(:max_connections, count)
    end

    # Largest request body accepted, in bytes; a larger one gets 413
    # Content Too Large before the app sees it. nil or 0 means no limit.
    #
    # The default is 52428800 (50 MiB).
    #
    # @example 10 MiB
    #   max_body_size 10 * 1024 * 1024
    #
    def max_body_size(bytes)
      @settings[:max_body_size] = bytes.nil? ? nil : non_negative_integer(:max_body_size, bytes)
    end

    # Request bodies up to this many bytes are kept in memory (and handed
    # to the app as a StringIO); a longer one is spooled to an unlinked
    # file in $TMPDIR as it arrives. Either way, by default, the app runs
    # only once the whole body is here (see stream_request_bodies).
    # The default is 114688 (112 KiB, as Puma).
    #
    # @example
    #   body_buffer_size 64 * 1024
    #
    def body_buffer_size(bytes)
      @settings[:body_buffer_size] = non_negative_integer(:body_buffer_size, bytes)
    end

    # true hands a request to the app as soon as its head is here, the body
    # streaming in while the app reads it (and `100 Continue` sent only when
    # it does): for apps that read the body while they answer. A slow
    # upload then holds a worker for as long as it takes. With false, the
    # default, Kino reads every body whole first.
    # The default is false.
    #
    # @example
    #   stream_request_bodies true
    #
    def stream_request_bodies(enabled = true)
      @settings[:stream_request_bodies] = boolean(:stream_request_bodies, enabled)
    end

    # Common request header values (User-Agent, Accept*, Host, Sec-CH-*,
    # ...; never Cookie, Authorization or another credential) become one
    # frozen String each, shared by every request and worker, instead of a
    # new String a request: fewer allocations, less GC. Off by default: an
    # app that changes such a value in place (force_encoding, <<) would
    # get a FrozenError where Puma let it.
    # The default is false.
    #
    # @example
    #   intern_header_values true
    #
    def intern_header_values(enabled = true)
      @settings[:intern_header_values] = boolean(:intern_header_values, enabled)
    end

    # Bytes per second a request body must arrive at, averaged over windows
    # of min_body_rate_window seconds; the first window is free. A slower
    # body gets 408 and the connection closes. nil or 0: no minimum (a body
    # may then stall up to first_data_timeout between reads, for ever).
    # The default is 1024.
    #
    # @example
    #   min_body_rate 4096
    #
    def min_body_rate(bytes_per_second)
      @settings[:min_body_rate] = bytes_per_second.nil? ? nil : non_negative_integer(:min_body_rate, bytes_per_second)
    end

    # Seconds over which min_body_rate is averaged; the first such span of
    # a body is its grace period.
    # The default is 5.
    #
    # @example
    #   min_body_rate_window 10
    #
    def min_body_rate_window(seconds)
      @settings[:min_body_rate_window] = positive_seconds(:min_body_rate_window, seconds)
    end

    # Bytes of request bodies spooled to disk at once, over all connections.
    # An upload that would pass it gets 503 with retry-after (before it is
    # sent, when its Content-Length says so). nil or 0 means no limit.
    # The default is 1073741824 (1 GiB).
    #
    # @example 4 GiB
    #   max_spool_size 4 * 1024**3
    #
    def max_spool_size(bytes)
      @settings[:max_spool_size] = bytes.nil? ? nil : non_negative_integer(:max_spool_size, bytes)
    end

    # Largest request head (request line plus all headers), in bytes; a
    # larger one gets 431 Request Header Fields Too Large. It bounds the
    # memory a client can make us hold before a request is complete.
    #
    # The default is 65536 (64 KiB).
    #
    # @example
    #   max_header_size 16 * 1024
    #
    def max_header_size(bytes)
      @settings[:max_header_size] = positive_integer(:max_header_size, bytes)
    end

    # Longest request target (path and query), in bytes; a longer one gets
    # 414 URI Too Long.
    #
    # The default is 8192.
    #
    # @example
    #   max_uri_size 4096
    #
    def max_uri_size(bytes)
      @settings[:max_uri_size] = positive_integer(:max_uri_size, bytes)
    end

    # Most header fields in one request; more get 431 Request Header Fields
    # Too Large. Many tiny headers cost more to turn into a Rack env than
    # their size suggests.
    #
    # The default is 100.
    #
    # @example
    #   max_headers 50
    #
    def max_headers(count)
      @settings[:max_headers] = positive_integer(:max_headers, count)
    end

    # Seconds from accept, or from the end of the previous response, until
    # the request head is complete. Dribbling bytes does not extend it
    # (slowloris). It is also the longest a request body may stall between
    # reads, and a response between write progress. A late head or body gets
    # 408 and the connection closes.
    # The default is 30.
    #
    # @example
    #   first_data_timeout 10
    #
    def first_data_timeout(seconds)
      @settings[:first_data_timeout] = positive_seconds(:first_data_timeout, seconds)
    end

    # Seconds a keep-alive connection may sit idle between requests before
    # it is closed.
    # The default is 20.
    #
    # @example
    #   persistent_timeout 60
    #
    def persistent_timeout(seconds)
      @settings[:persistent_timeout] = positive_seconds(:persistent_timeout, seconds)
    end

    # Length of the kernel's queue of connections not yet accepted (the
    # listen(2) backlog). The kernel caps it at net.core.somaxconn.
    #
    # The default is 1024.
    #
    # @example
    #   backlog 4096
    #
    def backlog(count)
      @settings[:backlog] = positive_integer(:backlog, count)
    end

    # Seconds a graceful shutdown (SIGTERM, SIGINT) waits for requests in
    # flight to finish before the process exits anyway.
    #
    # The default is 30.
    #
    # @example
    #   shutdown_timeout 10
    #
    def shutdown_timeout(seconds)
      @settings[:shutdown_timeout] = non_negative_seconds(:shutdown_timeout, seconds)
    end

    # Requests a worker thread takes per visit to the queue, 1 to 64: one
    # that wakes for a request also takes up to N - 1 more already queued,
    # and serves them one after another without going back to the queue.
    # That saves queue traffic under load, but each of them waits behind
    # the ones before it, a slow one included, however many other workers
    # are idle: keep 1 unless a benchmark of your app says otherwise. A
    # request held this way that gets its 504 (request_timeout) meanwhile
    # is never run; one whose worker ends before starting it goes back to
    # the queue, in front, for another worker.
    #
    # The default is 1.
    #
    # @example
    #   batch 4
    #
    def batch(count)
      @settings[:batch] = accepted(:batch, count, to_integer(count), "an Integer from 1 to 64") do |n|
        n.between?(1, 64)
      end
    end

    # Experimental: a small private queue (a lane, 4 requests deep) for
    # each worker thread, in front of the shared queue. While the shared
    # queue is empty, a request goes to the lane of a worker that is
    # serving, which takes it when it is done without being woken; a
    # worker with nothing to do steals from its siblings' lanes before it
    # sleeps, and every 5 ms while it does, so no request waits long behind
    # a slow one. A backlog, and with it queue_depth, queue_timeout and the
    # 503, stays the shared queue's. Off by default: it saves a wake-up per
    # request at saturation, but it is young and not yet measured here.
    # The default is false.
    #
    # @example
    #   lanes
    # @example
    #   lanes false
    #
    def lanes(enabled = true)
      @settings[:lanes] = boolean(:lanes, enabled)
    end

    # Runs each connection on one I/O thread for its whole life (I/O
    # shards), instead of on whichever I/O thread is free.
    # Not yet implemented in this version: accepted, checked, no effect.
    #
    # The default is false.
    #
    # @example
    #   io_shards true
    #
    def io_shards(enabled = true)
      @settings[:io_shards] = boolean(:io_shards, enabled)
    end

    # Serves HTTP/2 (prior-knowledge h2c on plain binds, ALPN h2 with TLS)
    # besides HTTP/1.1.
    # Not yet implemented in this version: accepted, checked, no effect
    # (Kino speaks HTTP/1.1 only, which is what `http2 false` asks for).
    #
    # The default is false.
    #
    # @example
    #   http2 true
    #
    def http2(enabled = true)
      @settings[:http2] = boolean(:http2, enabled)
    end

    # Lets the pool grow past +workers+ while requests wait in the queue,
    # up to this many workers; extra workers retire after
    # +scale_down_after+ seconds idle. nil keeps the pool at +workers+.
    # Not yet implemented in this version: accepted, checked, no effect.
    #
    # The default is nil.
    #
    # @example
    #   max_workers 16
    #
    def max_workers(count)
      @settings[:max_workers] = count.nil? ? nil : positive_integer(:max_workers, count)
    end

    # Seconds a worker beyond +workers+ (see +max_workers+) sits idle
    # before it retires.
    # Not yet implemented in this version: accepted, checked, no effect.
    #
    # The default is 30.
    #
    # @example
    #   scale_down_after 60
    #
    def scale_down_after(seconds)
      @settings[:scale_down_after] = positive_seconds(:scale_down_after, seconds)
    end

    # Writes an access log line per request to stdout, from native code:
    # time, peer, request line, status, bytes, duration, the time spent
    # waiting for a worker and the worker that served it. Requests the
    # server answers itself (408, 413, 431, 503, 504, ...) have their line
    # too. Off, it costs nothing.
    #
    # The default is false.
    #
    # @example
    #   log_requests
    #
    def log_requests(enabled = true)
      @settings[:log_requests] = boolean(:log_requests, enabled)
    end

    # The access log's format: :text (one readable line, tinted by status
    # class when stdout is a terminal) or :json (one JSON object a line,
    # for log shippers).
    #
    # The default is :text.
    #
    # @example
    #   log_format :json
    #
    def log_format(name)
      @settings[:log_format] = one_of(:log_format, name, LOG_FORMATS)
    end

    # Serves HTTPS on every bind with this certificate (its chain may
    # follow it) and private key, each a file path or the PEM text itself.
    # TLS 1.2 and 1.3 only, ALPN http/1.1. With +ca+ (a path or PEM of one
    # or more CA certificates) clients must present a certificate it
    # signed. SIGHUP loads the files again. A certificate or key that does
    # not load stops the boot, naming the file.
    #
    # The default is nil (plain HTTP).
    #
    # @example
    #   tls cert: "config/tls/cert.pem", key: "config/tls/key.pem"
    # @example PEM text from the environment
    #   tls cert: ENV.fetch("TLS_CERT"), key: ENV.fetch("TLS_KEY")
    # @example Client certificates required
    #   tls cert: "config/tls/cert.pem", key: "config/tls/key.pem", ca: "config/tls/clients-ca.pem"
    #
    def tls(cert:, key:, ca: nil) # rubocop:disable Naming/MethodParameterName -- Puma's and OpenSSL's word
      settings = { cert: path_string(:tls, cert, "cert"), key: path_string(:tls, key, "key") }
      settings[:ca] = path_string(:tls, ca, "ca") unless ca.nil?
      @settings[:tls] = settings.freeze
    end

    # Serves a control endpoint on this address: /stats (JSON), /metrics
    # (Prometheus), /ready and /live, answered natively on a thread of its
    # own, so it answers while every worker is busy. Keep it off the public
    # interface, or set control_token.
    #
    # The default is nil (no control endpoint).
    #
    # @example
    #   control_bind "127.0.0.1:9293"
    # @example
    #   control_bind "unix://tmp/sockets/kino-control.sock"
    #
    def control_bind(address)
      parsed = listen_address(:control_bind, address) unless address.nil?
      if parsed&.tcp? && parsed.port.nil?
        invalid!("control_bind needs a port, as in \"127.0.0.1:9293\" (got #{address.inspect})")
      end
      @settings[:control_bind] = address&.dup&.freeze
    end

    # A token the control endpoint requires on /stats and /metrics, as
    # "Authorization: Bearer <token>"; /ready and /live stay open.
    #
    # The default is nil (no token required).
    #
    # @example
    #   control_token ENV.fetch("KINO_CONTROL_TOKEN")
    #
    def control_token(token)
      unless token.nil? || (token.is_a?(String) && !token.empty?)
        invalid!("control_token must be a non-empty String (got #{token.inspect})")
      end
      if token && !BEARER_TOKEN.match?(token)
        # A token read from a file keeps its newline, and no client can
        # send that in a header: refused here, it would only ever get 401.
        invalid!("control_token must be a Bearer token (letters, digits and -._~+/, then any =): " \
                 "#{token.inspect} is not#{' (strip its newline)' if token.end_with?("\n")}")
      end
      @settings[:control_token] = token&.dup&.freeze
    end

    # RFC 6750's b64token: what "Authorization: Bearer <token>" can carry.
    BEARER_TOKEN = %r{\A[A-Za-z0-9\-._~+/]+=*\z}
    private_constant :BEARER_TOKEN

    # Seconds after which a worker slot stuck on one request is written off
    # and replaced by a fresh one, so a hung request cannot take capacity
    # away for good.
    # The default is nil (never).
    #
    # @example
    #   quarantine_timeout 60
    #
    def quarantine_timeout(seconds)
      @settings[:quarantine_timeout] = optional_positive_seconds(:quarantine_timeout, seconds)
    end

    # Most workers replaced by +quarantine_timeout+ over the life of the
    # process; each worker set aside keeps its memory (and its thread or
    # ractor), so this bounds the cost. The default is nil: the number of
    # workers.
    #
    # @example
    #   quarantine_max 8
    #
    def quarantine_max(count)
      @settings[:quarantine_max] = count.nil? ? nil : non_negative_integer(:quarantine_max, count)
    end

    # Called with (exception, env) when the app raises or its answer breaks
    # the Rack contract, after the client has its 500; env is the request's
    # env. Runs in the worker. A request body cut off by its client is not
    # the app's error: it is logged in one line and on_error is not called.
    # Takes a block or any object that responds to #call; a second on_error
    # replaces the first.
    #
    # The default is nil (errors are logged to stderr).
    #
    # @example
    #   on_error { |exception, env| warn "#{exception.class}: #{exception.message}" }
    # @example
    #   on_error ErrorReporter.method(:notify)
    #
    def on_error(handler = nil, &block)
      @settings[:on_error] = hook(:on_error, handler, block)
    end

    # Runs on the main thread once the worker pool is up and listening.
    #
    # The default is nil.
    #
    # @example
    #   after_boot { puts "kino is up" }
    #
    def after_boot(handler = nil, &block)
      @settings[:after_boot] = hook(:after_boot, handler, block)
    end

    # Runs inside each worker before it serves its first request, with the
    # worker's index (0 to workers - 1, then replacements), as Puma's
    # on_worker_boot: open per-worker connections here. A hook that takes no
    # argument is called without it. If it raises, the error is logged with
    # its backtrace and the worker serves anyway. In :ractor mode it runs in
    # the worker's ractor, so it must be shareable (Ractor.make_shareable)
    # and may only read shareable values; a block written in this file
    # qualifies when the local variables it uses hold shareable values.
    #
    # The default is nil.
    #
    # @example
    #   after_worker_boot { ActiveRecord::Base.establish_connection }
    # @example
    #   after_worker_boot { |index| warn "worker #{index} up" }
    #
    def after_worker_boot(handler = nil, &block)
      @settings[:after_worker_boot] = hook(:after_worker_boot, handler, block)
    end

    # Called with (env, status) in the worker after each response its app
    # gave, once the whole response is handed to the native responder and
    # queued for the socket (the client may not have read all of it yet),
    # and a streamed body has written its last chunk and been closed.
    # status is the Integer Kino sent: the app's, or 500 when the app
    # raised or broke the Rack contract (also when a body failed after its
    # head was out). A hook that raises is logged in one line; the
    # response and the worker are unaffected. In :ractor mode it runs in
    # the worker's ractor, so it must be shareable, as on_error. Takes a
    # block or any object that responds to #call.
    #
    # The default is nil, and costs nothing on the request path.
    #
    # @example
    #   after_request_complete { |env, status| warn env["PATH_INFO"] if status >= 500 }
    #
    def after_request_complete(handler = nil, &block)
      @settings[:after_request_complete] = hook(:after_request_complete, handler, block)
    end

    # Runs on the main thread when a worker ends, with (worker_index, error),
    # error being nil for a clean exit.
    #
    # The default is nil.
    #
    # @example
    #   on_worker_exit { |index, error| warn "worker #{index} died: #{error.inspect}" if error }
    #
    def on_worker_exit(handler = nil, &block)
      @settings[:on_worker_exit] = hook(:on_worker_exit, handler, block)
    end

    # Runs in the parent before each child process is forked (with
    # `processes` above 1): close what a child must not inherit, such as a
    # database connection the preloaded app opened.
    #
    # The default is nil.
    #
    # @example
    #   before_fork { ActiveRecord::Base.connection_pool.disconnect! }
    #
    def before_fork(handler = nil, &block)
      @settings[:before_fork] = hook(:before_fork, handler, block)
    end

    # Runs in each child process right after the fork, before its server
    # starts, with the process index (0 to processes - 1; a replacement
    # gets the index of the child it replaces): reconnect databases here.
    # If it raises, the child logs the error and exits, and the parent
    # starts another after a back-off.
    #
    # The default is nil.
    #
    # @example
    #   after_fork { |index| ActiveRecord::Base.establish_connection }
    #
    def after_fork(handler = nil, &block)
      @settings[:after_fork] = hook(:after_fork, handler, block)
    end

    private

    # Without this, a misspelt directive would raise NoMethodError about an
    # object the user never heard of.
    def method_missing(name, *)
      invalid!("unknown directive '#{name}'#{suggestion(name) { |closest| "'#{closest}'" }}")
    end

    def respond_to_missing?(_name, _include_private)
      false
    end

    # " (did you mean ...?)" with the closest directive, written by the
    # block, or "" when none is close (or did_you_mean is disabled).
    def suggestion(name)
      return "" unless defined?(DidYouMean::SpellChecker)

      closest = DidYouMean::SpellChecker.new(dictionary: self.class.directives.map(&:to_s)).correct(name.to_s).first
      closest ? " (did you mean #{yield closest}?)" : ""
    end

    def apply_option(name, value)
      unless self.class.directives.include?(name)
        invalid!("unknown option #{name.inspect}#{suggestion(name) { |closest| ":#{closest}" }}")
      end

      case name
      when :bind then Array(value).each { |address| bind(address) }
      when :threads then threads(*Array(value))
      when :tls
        invalid!("tls needs a Hash with :cert and :key (got #{value.inspect})") unless value.is_a?(Hash)
        tls(**value.transform_keys(&:to_sym))
      else
        public_send(name, value)
      end
    rescue ArgumentError => e
      invalid!("option #{name.inspect}: #{e.message}")
    end

    # After the file is evaluated, blocks written in it still hold this
    # object as their self. Dropping the settings and freezing leaves an
    # object Ractor.make_shareable accepts, so a hook block can be handed
    # to worker ractors.
    def seal
      remove_instance_variable(:@settings)
      freeze
    end

    def invalid!(message)
      raise ConfigError, "#{location_prefix}#{message}"
    end

    # +address+ read as a Kino::ListenAddress, or refused with the
    # directive's name in front of ListenAddress's reason.
    def listen_address(directive, address)
      ListenAddress.parse(address)
    rescue ConfigError => e
      invalid!("#{directive} #{e.message}")
    end

    # The line of the config file that called the directive being checked.
    def location_prefix
      return "" unless @source_path

      line = caller_locations.find { |location| location.path == @source_path }&.lineno
      line ? "#{@display_path}:#{line}: " : "#{@display_path}: "
    end
  end
end
