# frozen_string_literal: true

module Bench
  # Kino in one mode (kino-threaded, kino-ractor, kino-auto, ...), run from
  # --kino-root. With +log or +json after the mode (kino-threaded+log), the
  # access log is on (log_requests, in that log_format), written like the
  # rest of the server's output to its log file: the cost of logging every
  # request to a file, not to a terminal. +copy and +lendall move the
  # smallest body String lent to the I/O thread instead of copied
  # (KINO_LEND_MIN_BYTES, 4 KiB by default): past any body, or 1 byte.
  class KinoTarget < Target
    ACCESS_LOGS = { nil => nil, "log" => :text, "json" => :json }.freeze
    LEND_MIN = { "copy" => 1 << 40, "lendall" => 1 }.freeze

    # Threads per worker when --threads is not given: Kino's own default.
    # They mirror Kino::Configuration::THREADS_PER_WORKER (1 in :ractor, 3
    # in :threaded); :auto picks :ractor for this app, which is shareable.
    # Every run's boot line ("Mode: ractor, 2 workers x 1 threads") is
    # checked against what was asked for, so a drift shows up as a problem
    # rather than as a silently different topology.
    DEFAULT_THREADS = { "ractor" => 1, "threaded" => 3, "auto" => 1 }.freeze

    attr_reader :mode

    def initialize(name, options, mode, access_log: nil, lend_min: nil)
      super(name, options)
      @mode = mode
      @access_log = access_log
      @lend_min = lend_min
    end

    def env
      @lend_min ? { "KINO_LEND_MIN_BYTES" => @lend_min.to_s } : {}
    end

    def kino?
      true
    end

    def default_threads
      DEFAULT_THREADS.fetch(@mode, DEFAULT_THREADS["threaded"])
    end

    def describe
      log = @access_log ? ", access log on (#{@access_log})" : ""
      lend = @lend_min ? ", KINO_LEND_MIN_BYTES=#{@lend_min}" : ""
      "Kino :#{@mode}, #{@options.workers} workers x #{threads_text}, one process#{log}#{lend}"
    end

    # Kino prints "* Mode: ractor, 2 workers x 1 threads" at boot. It must
    # match what this target asked for (for kino-auto: any mode, the same
    # counts), or the numbers belong to another topology.
    def boot_line_problem(log_path)
      line = File.exist?(log_path) && File.foreach(log_path).find { |l| l.include?("Mode: ") }
      return "no \"Mode:\" line in Kino's boot output" unless line

      m = line.match(/Mode: (\w+), (\d+) workers? x (\d+) threads?/)
      return "unexpected boot line #{line.strip.inspect}" unless m

      ok = (@mode == "auto" || m[1] == @mode) && m[2].to_i == @options.workers && m[3].to_i == threads
      ok ? nil : "Kino booted as #{line.strip.delete_prefix('* ').inspect}, expected :#{@mode}, #{topology}"
    end

    # Kino runs from --kino-root with that checkout's Gemfile, so Bundler
    # puts that checkout's lib (and compiled extension) on the load path.
    def gemfile
      File.join(@options.kino_root, "Gemfile")
    end

    def command(port)
      [*ruby_command, File.join(@options.kino_root, "exe", "kino"),
       "-b", "tcp://#{HOST}:#{port}", "-w", @options.workers.to_s, "-t", threads.to_s,
       "-m", @mode, "-e", "production", *config_arguments, APP_FILE]
    end

    private

    # `-C FILE` for a config file holding what this target turns on (the
    # tls directive with --tls, the access log), or nothing.
    def config_arguments
      directives = []
      directives << @options.tls.kino_directive if @options.tls
      directives << "log_requests true\nlog_format #{@access_log.inspect}\n" if @access_log
      return [] if directives.empty?

      path = File.join(Dir.tmpdir, "kino-bench-#{Process.pid}-#{@mode}-#{@access_log || 'plain'}.rb")
      File.write(path, "# frozen_string_literal: true\n\n#{directives.join}")
      ["-C", path]
    end
  end
end
