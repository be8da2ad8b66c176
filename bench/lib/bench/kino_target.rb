# frozen_string_literal: true

module Bench
  # Kino in one mode (kino-threaded, kino-ractor, kino-auto, ...), run from
  # --kino-root. With -pN after the mode (kino-threaded-p2) it forks N
  # server processes (`processes N`), each with --workers workers. Each
  # +MODIFIER after that turns something on, and they combine
  # (kino-ractor+lanes+batch4+log):
  # - +log or +json: the access log (log_requests, in that log_format),
  #   written like the rest of the server's output to its log file: the
  #   cost of logging every request to a file, not to a terminal;
  # - +copy or +lendall: the smallest body String lent to the I/O thread
  #   instead of copied (KINO_LEND_MIN_BYTES, 4 KiB by default) moved past
  #   any body, or down to 1 byte;
  # - +lanes: `lanes true`, a queue per worker;
  # - +batchN: `batch N`, up to N queued requests taken per visit;
  # - +spinsN: a worker finding the queue empty looks N times before it
  #   parks (KINO_QUEUE_SPINS; 10,000 by default).
  class KinoTarget < Target
    ACCESS_LOGS = { "log" => :text, "json" => :json }.freeze
    LEND_MIN = { "copy" => 1 << 40, "lendall" => 1 }.freeze
    MODIFIERS = "log, json, copy, lendall, lanes, batchN, spinsN"

    # { access_log:, lend_min:, lanes:, batch:, spins: } from "+lanes+batch4+log";
    # raises on an unknown, repeated or contradictory modifier.
    def self.modifiers(name, suffix)
      words = suffix.to_s.split("+").drop(1)
      found = words.each_with_object({}) do |word, settings|
        key, value = modifier(name, word)
        raise OptionParser::InvalidArgument, "#{name}: +#{word} repeats or contradicts another modifier" if
          settings.key?(key)

        settings[key] = value
      end
      { access_log: nil, lend_min: nil, lanes: false, batch: nil, spins: nil }.merge(found)
    end

    # [setting, value] for one modifier word.
    def self.modifier(name, word)
      return [:access_log, ACCESS_LOGS[word]] if ACCESS_LOGS.key?(word)
      return [:lend_min, LEND_MIN[word]] if LEND_MIN.key?(word)
      return [:lanes, true] if word == "lanes"

      count = word[/\Abatch(\d+)\z/, 1]&.to_i
      return [:batch, count] if count&.positive?

      spins = word[/\Aspins(\d+)\z/, 1]
      return [:spins, spins.to_i] if spins

      raise OptionParser::InvalidArgument, "#{name}: unknown modifier +#{word} (known: #{MODIFIERS})"
    end

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

    def initialize(name, options, mode, processes: nil, shape: nil, access_log: nil, lend_min: nil, lanes: false,
                   batch: nil, spins: nil)
      super(name, options, processes: processes, shape: shape)
      @mode = mode
      @access_log = access_log
      @lend_min = lend_min
      @lanes = lanes
      @batch = batch
      @spins = spins
    end

    def env
      env = {}
      env["KINO_LEND_MIN_BYTES"] = @lend_min.to_s if @lend_min
      env["KINO_QUEUE_SPINS"] = @spins.to_s if @spins
      env
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
      lend += ", KINO_QUEUE_SPINS=#{@spins}" if @spins
      queue = "#{', lanes' if @lanes}#{", batch #{@batch}" if @batch}"
      "Kino :#{@mode}, #{workers} workers x #{threads_text}, #{where}#{log}#{lend}#{queue}"
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

      ok = (@mode == "auto" || m[1] == @mode) && m[2].to_i == workers && m[3].to_i == threads
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
       "-b", "tcp://#{HOST}:#{port}", "-w", workers.to_s, "-t", threads.to_s,
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
      counts = [m[1], m[2], m[3]].map(&:to_i) == [processes, workers, threads]
      pids_ok = m[5].split(", ").size == processes
      return nil if mode_ok && counts && pids_ok

      "Kino booted as #{line.strip.delete_prefix('* ').inspect}, expected :#{@mode}, #{topology}"
    end

    # `-C FILE` for a config file holding what this target turns on
    # (`processes` for -pN, the tls directive with --tls, the access log,
    # lanes and batch), or nothing.
    def config_arguments
      directives = config_directives
      return [] if directives.empty?

      path = File.join(Dir.tmpdir, "kino-bench-#{Process.pid}-#{@name.tr('+', '-')}.rb")
      File.write(path, "# frozen_string_literal: true\n\n#{directives.join}")
      ["-C", path]
    end

    # The config file's lines, without the file.
    def config_directives
      directives = []
      directives << "processes #{processes}\n" if processes
      directives << @options.tls.kino_directive if @options.tls
      directives << "log_requests true\nlog_format #{@access_log.inspect}\n" if @access_log
      directives << "lanes true\n" if @lanes
      directives << "batch #{@batch}\n" if @batch
      directives
    end
  end
end
