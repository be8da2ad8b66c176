# frozen_string_literal: true

module Bench
  # Kino in one mode (kino-threaded, kino-ractor, kino-auto, ...), run from
  # --kino-root. With -pN after the mode (kino-threaded-p2) it forks N
  # server processes (`processes N`), each with --workers workers. With
  # +log or +json at the end (kino-threaded+log), the access log is on
  # (log_requests, in that log_format), written like the rest of the
  # server's output to its log file: the cost of logging every request to
  # a file, not to a terminal. +copy and +lendall move the smallest body
  # String lent to the I/O thread instead of copied (KINO_LEND_MIN_BYTES,
  # 4 KiB by default): past any body, or 1 byte.
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

    # A group's boot line: processes, workers, threads, mode, children's pids.
    GROUP_LINE = /Processes:\ (\d+)\ processes\ x\ (\d+)\ workers?\ x\ (\d+)\ threads?
                  \ \(mode\ (\w+|chosen[\w\ ]+)\).*;\ pids\ ([\d,\ ]+)$/x

    attr_reader :mode

    def initialize(name, options, mode, access_log: nil, processes: nil, lend_min: nil)
      super(name, options, processes: processes)
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

    def topology
      processes ? "#{processes} procs x #{super}" : super
    end

    def describe
      log = @access_log ? ", access log on (#{@access_log})" : ""
      where = processes ? "in each of #{processes} processes (processes #{processes})" : "one process"
      lend = @lend_min ? ", KINO_LEND_MIN_BYTES=#{@lend_min}" : ""
      "Kino :#{@mode}, #{@options.workers} workers x #{threads_text}, #{where}#{log}#{lend}"
    end

    # Kino prints "* Mode: ractor, 2 workers x 1 threads" at boot. It must
    # match what this target asked for (for kino-auto: any mode, the same
    # counts), or the numbers belong to another topology.
    def boot_line_problem(log_path)
      return group_line_problem(log_path) if processes

      line = boot_line(log_path, "Mode: ")
      return "no \"Mode:\" line in Kino's boot output" unless line

      m = line.match(/Mode: (\w+), (\d+) workers? x (\d+) threads?/)
      return "unexpected boot line #{line.strip.inspect}" unless m

      ok = (@mode == "auto" || m[1] == @mode) && m[2].to_i == @options.workers && m[3].to_i == threads
      ok ? nil : "Kino booted as #{line.strip.delete_prefix('* ').inspect}, expected :#{@mode}, #{topology}"
    end

    # Kino runs from --kino-root with that checkout's Gemfile (or the
    # workload's, which names that checkout), so Bundler puts that
    # checkout's lib (and compiled extension) on the load path.
    def gemfile
      @options.workload.gemfile || File.join(@options.kino_root, "Gemfile")
    end

    def command(port)
      [*ruby_command, File.join(@options.kino_root, "exe", "kino"),
       "-b", "tcp://#{HOST}:#{port}", "-w", @options.workers.to_s, "-t", threads.to_s,
       "-m", @mode, "-e", "production", *config_arguments, @options.workload.rackup]
    end

    private

    def boot_line(log_path, marker)
      File.exist?(log_path) && File.foreach(log_path).find { |l| l.include?(marker) }
    end

    # A group says "* Processes: 2 processes x 1 workers x 3 threads (mode
    # threaded), 2 I/O threads each; pids 4242, 4243" (with preload_app
    # off, "mode chosen in each process").
    def group_line_problem(log_path)
      line = boot_line(log_path, "Processes: ")
      return "no \"Processes:\" line in Kino's boot output (did it fork?)" unless line

      m = line.match(GROUP_LINE)
      return "unexpected boot line #{line.strip.inspect}" unless m

      mode_ok = @mode == "auto" || m[4] == @mode
      counts = [m[1], m[2], m[3]].map(&:to_i) == [processes, @options.workers, threads]
      pids_ok = m[5].split(", ").size == processes
      return nil if mode_ok && counts && pids_ok

      "Kino booted as #{line.strip.delete_prefix('* ').inspect}, expected :#{@mode}, #{topology}"
    end

    # `-C FILE` for a config file holding what this target turns on
    # (`processes` for -pN, the tls directive with --tls, the access log),
    # or nothing.
    def config_arguments
      directives = []
      directives << "processes #{processes}\n" if processes
      directives << @options.tls.kino_directive if @options.tls
      directives << "log_requests true\nlog_format #{@access_log.inspect}\n" if @access_log
      return [] if directives.empty?

      path = File.join(Dir.tmpdir, "kino-bench-#{Process.pid}-#{@name.tr('+', '-')}.rb")
      File.write(path, "# frozen_string_literal: true\n\n#{directives.join}")
      ["-C", path]
    end
  end
end
