#!/usr/bin/env ruby
# frozen_string_literal: true

# Kino against Puma, side by side in one session: same app
# (bench/bench_app.ru), same topology (workers x threads), same wrk settings,
# measured in interleaved rounds. See bench/README.md.
#
#   bundle exec ruby bench/compare.rb                       # defaults
#   bundle exec ruby bench/compare.rb --rounds 3 --duration 10 --endpoints plaintext,cpu,io
#   bundle exec ruby bench/compare.rb --yjit                # every server with --yjit
#   bundle exec ruby bench/compare.rb --targets kino-threaded,kino-ractor,puma --ratio kino-ractor:kino-threaded
#   bundle exec ruby bench/compare.rb --check-app           # only the app's Ractor check
#
# Exit status: 0 when every measurement was clean; 1 when any had socket
# errors, non-2xx/3xx answers, a wrong answer, a crash, a hung shutdown or a
# leftover process; 130 when interrupted. A target that does not boot is
# reported and skipped, and does not by itself fail the run.

require "etc"
require "fileutils"
require "digest"
require "json"
require "net/http"
require "optparse"
require "rbconfig"
require "shellwords"
require "socket"
require "tempfile"
require "time"
require "tmpdir"

ROOT = File.expand_path("..", __dir__)
ENV["BUNDLE_GEMFILE"] ||= File.join(ROOT, "Gemfile")
require "bundler/setup"
require "rack"

module BenchCompare
  APP_FILE = File.join(ROOT, "bench", "bench_app.ru")
  RESULTS_DIR = File.join(ROOT, "bench", "results")
  HOST = "127.0.0.1"

  # What each endpoint must answer. All of them are expected to be 200, so
  # any non-2xx/3xx answer during a measurement is an error.
  ENDPOINTS = {
    "plaintext" => { path: "/plaintext", body: ->(b) { b == "Hello, World!" } },
    "cpu" => { path: "/cpu", body: ->(b) { b == "6765" } },
    "io" => { path: "/io", body: ->(b) { b == "slept" } },
    "io_native" => { path: "/io_native", body: ->(b) { b.start_with?("slept (") } },
    "10k" => { path: "/10k", body: ->(b) { b.bytesize == 10_000 } }
  }.freeze

  # ------------------------------------------------------------------ options

  Options = Struct.new(:rounds, :duration, :warmup, :connections, :wrk_threads, :endpoints,
                       :targets, :workers, :threads, :ratios, :yjit, :output, :pause, :wait_idle, :boot_timeout,
                       :stop_timeout, :check_app, :kino_root, keyword_init: true)

  # Threads per worker when --threads is not given: each server's own
  # default. Kino's mirror Kino::Configuration::THREADS_PER_WORKER (1 in
  # :ractor, 3 in :threaded); :auto picks :ractor for this app, which is
  # shareable. Every Kino run's boot line ("Mode: ractor, 2 workers x 1
  # threads") is checked against what was asked for, so a drift shows up as
  # a problem rather than as a silently different topology.
  KINO_DEFAULT_THREADS = { "ractor" => 1, "threaded" => 3, "auto" => 1 }.freeze
  PUMA_DEFAULT_THREADS = 3

  # --wait-idle: the machine counts as idle when, over one probe, everything
  # running on it used fewer cores than this.
  IDLE_CORES = 0.25
  IDLE_PROBE = 1.0

  def self.env_int(name, default)
    ENV[name] && !ENV[name].empty? ? Integer(ENV[name]) : default
  end

  def self.env_list(name, default)
    ENV[name] && !ENV[name].empty? ? ENV[name].split(",").map(&:strip) : default
  end

  def self.parse_options(argv)
    o = Options.new(
      rounds: env_int("BENCH_ROUNDS", 3),
      duration: env_int("BENCH_DURATION", 10),
      warmup: env_int("BENCH_WARMUP", 2),
      connections: env_int("BENCH_CONNECTIONS", 64),
      wrk_threads: env_int("BENCH_WRK_THREADS", 2),
      endpoints: env_list("BENCH_ENDPOINTS", ENDPOINTS.keys),
      targets: env_list("BENCH_TARGETS", %w[kino-threaded puma]),
      workers: env_int("BENCH_WORKERS", Etc.nprocessors),
      threads: env_int("BENCH_THREADS", nil), # nil: each target's own default
      ratios: env_list("BENCH_RATIO", []).map { |spec| parse_ratio(spec) },
      yjit: %w[1 true yes on].include?(ENV["BENCH_YJIT"].to_s.downcase),
      output: File.join(RESULTS_DIR, "latest.md"),
      pause: 1.0,
      wait_idle: Float(ENV["BENCH_WAIT_IDLE"] || 0),
      boot_timeout: 60.0,
      stop_timeout: 20.0,
      check_app: false,
      kino_root: File.expand_path(ENV["BENCH_KINO_ROOT"] || ROOT)
    )
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby bench/compare.rb [options]\n\n" \
                    "Every option also reads an environment variable (shown) for `rake bench`.\n\n"
      opts.on("--rounds N", Integer, "Rounds (BENCH_ROUNDS, default #{o.rounds})") { |v| o.rounds = v }
      opts.on("-d", "--duration SECONDS", Integer, "Measured window per run (BENCH_DURATION, default #{o.duration})") { |v| o.duration = v }
      opts.on("--warmup SECONDS", Integer, "Warm-up burst before each window, 0 for none (BENCH_WARMUP, default #{o.warmup})") { |v| o.warmup = v }
      opts.on("-c", "--connections N", Integer, "wrk connections (BENCH_CONNECTIONS, default #{o.connections})") { |v| o.connections = v }
      opts.on("--wrk-threads N", Integer, "wrk threads (BENCH_WRK_THREADS, default #{o.wrk_threads})") { |v| o.wrk_threads = v }
      opts.on("-e", "--endpoints LIST", Array, "Comma-separated, from #{ENDPOINTS.keys.join(',')} (BENCH_ENDPOINTS)") { |v| o.endpoints = v }
      opts.on("--targets LIST", Array, "Comma-separated: puma, kino-MODE (kino-threaded, kino-ractor, ...) (BENCH_TARGETS, default #{o.targets.join(',')})") { |v| o.targets = v }
      opts.on("-w", "--workers N", Integer, "Workers for every server (BENCH_WORKERS, default nproc = #{o.workers})") { |v| o.workers = v }
      opts.on("-t", "--threads N", Integer, "Threads per worker for every server (BENCH_THREADS; default: each server's own,",
              "kino-ractor #{KINO_DEFAULT_THREADS['ractor']}, kino-threaded #{KINO_DEFAULT_THREADS['threaded']}, " \
              "puma #{PUMA_DEFAULT_THREADS})") { |v| o.threads = v }
      opts.on("--ratio A:B", "Add a column with A's median req/s divided by B's (repeatable; BENCH_RATIO=A:B,C:D).",
              "Every target is always compared with puma when puma runs") { |v| o.ratios << parse_ratio(v) }
      opts.on("--[no-]yjit", "Run every server with ruby --yjit (BENCH_YJIT=1; default off)") { |v| o.yjit = v }
      opts.on("-o", "--output FILE", "Markdown report (default bench/results/latest.md)") { |v| o.output = File.expand_path(v) }
      opts.on("--pause SECONDS", Float, "Idle time between runs (default #{o.pause})") { |v| o.pause = v }
      opts.on("--wait-idle SECONDS", Float, "Before each run, wait up to SECONDS for the machine to be idle",
              "(under #{IDLE_CORES} cores busy over #{IDLE_PROBE}s) (BENCH_WAIT_IDLE, default 0: don't wait)") { |v| o.wait_idle = v }
      opts.on("--boot-timeout SECONDS", Float, "How long a server may take to answer (default #{o.boot_timeout})") { |v| o.boot_timeout = v }
      opts.on("--stop-timeout SECONDS", Float, "How long a server may take to exit after SIGTERM (default #{o.stop_timeout})") { |v| o.stop_timeout = v }
      opts.on("--kino-root DIR", "Kino checkout to run, with its own compiled extension (BENCH_KINO_ROOT,",
              "default: this one); e.g. an exported commit, so a rebuild here cannot change it mid-run") do |v|
        o.kino_root = File.expand_path(v)
      end
      opts.on("--check-app", "Only check that the app is Ractor-shareable and answers, then exit") { o.check_app = true }
      opts.on("-h", "--help") do
        puts opts
        exit 0
      end
    end.parse!(argv)

    validate!(o)
    o
  end

  def self.parse_ratio(spec)
    parts = spec.to_s.split(":").map(&:strip)
    raise OptionParser::InvalidArgument, "#{spec.inspect}: expected A:B (two target names)" unless
      parts.size == 2 && parts.none?(&:empty?)

    parts
  end

  # Checks that do not depend on how the options were given (compare.rb's
  # flags, or bench/modes.rb building its own).
  def self.validate!(o)
    unknown = o.endpoints - ENDPOINTS.keys
    raise OptionParser::InvalidArgument, "unknown endpoint(s): #{unknown.join(', ')}" unless unknown.empty?

    o.targets.each { |t| Target.build(t, o) } # validates the names
    o.ratios.each do |a, b|
      missing = [a, b] - o.targets
      raise OptionParser::InvalidArgument, "--ratio #{a}:#{b}: #{missing.join(', ')} not among --targets" unless missing.empty?
      raise OptionParser::InvalidArgument, "--ratio #{a}:#{b}: a target against itself" if a == b
    end
    unless File.file?(File.join(o.kino_root, "exe", "kino")) && File.file?(File.join(o.kino_root, "Gemfile"))
      raise OptionParser::InvalidArgument, "--kino-root #{o.kino_root} has no exe/kino and Gemfile"
    end
    raise OptionParser::InvalidArgument, "rounds, duration, connections, workers, threads must be positive" unless
      [o.rounds, o.duration, o.connections, o.wrk_threads, o.workers, o.threads || 1].all?(&:positive?)

    o
  end

  # [numerator, denominator] pairs to show as ratio columns: every target
  # against puma when puma runs (the original "vs puma" column), then those
  # asked for with --ratio, without repeats.
  def self.ratio_pairs(options)
    default = options.targets.include?("puma") ? (options.targets - ["puma"]).map { |t| [t, "puma"] } : []
    (default + options.ratios).uniq
  end

  # ------------------------------------------------------------------ targets

  # A server to measure: how to start it, and what counts as a clean exit.
  class Target
    attr_reader :name

    def self.build(name, options)
      case name
      when "puma" then PumaTarget.new(name, options)
      when /\Akino-([a-z]+)\z/ then KinoTarget.new(name, options, Regexp.last_match(1))
      else raise OptionParser::InvalidArgument, "unknown target #{name} (expected puma or kino-MODE)"
      end
    end

    def initialize(name, options)
      @name = name
      @options = options
    end

    def kino?
      false
    end

    # Threads per worker for this target: --threads when given, else the
    # server's own default for this mode.
    def threads
      @options.threads || default_threads
    end

    def topology
      "#{@options.workers} x #{threads}"
    end

    # A problem with how the server says it booted (see KinoTarget), or nil.
    def boot_line_problem(_log_path)
      nil
    end

    def ruby_command
      [RbConfig.ruby, *(@options.yjit ? ["--yjit"] : []), "-rbundler/setup"]
    end

    def clean_exit?(status)
      status.success?
    end

    def gemfile
      File.join(ROOT, "Gemfile")
    end
  end

  class KinoTarget < Target
    attr_reader :mode

    def initialize(name, options, mode)
      super(name, options)
      @mode = mode
    end

    def kino?
      true
    end

    def default_threads
      KINO_DEFAULT_THREADS.fetch(@mode, KINO_DEFAULT_THREADS["threaded"])
    end

    def describe
      "Kino :#{@mode}, #{@options.workers} workers x #{threads} thread#{threads == 1 ? '' : 's'}, one process"
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
       "-m", @mode, "-e", "production", APP_FILE]
    end
  end

  class PumaTarget < Target
    def default_threads
      PUMA_DEFAULT_THREADS
    end

    def describe
      "Puma cluster, #{@options.workers} forked workers x #{threads} thread#{threads == 1 ? '' : 's'}"
    end

    def command(port)
      [*ruby_command, Gem.bin_path("puma", "puma"),
       "-b", "tcp://#{HOST}:#{port}", "-w", @options.workers.to_s,
       "-t", "#{threads}:#{threads}", "-e", "production", APP_FILE]
    end

    # Puma's master re-raises SIGTERM after a graceful stop, so it exits
    # "killed by TERM" (143 in a shell); that is its normal, clean exit.
    def clean_exit?(status)
      status.success? || status.termsig == Signal.list["TERM"]
    end
  end

  # --------------------------------------------------------- process hygiene

  # Every process group this script starts, so that an exception or Ctrl-C
  # still ends them all (and nothing outlives the harness).
  module Processes
    @groups = {}
    @lock = Mutex.new

    class << self
      def spawn(*cmd, **opts)
        pid = Process.spawn(*cmd, pgroup: true, **opts)
        @lock.synchronize { @groups[pid] = cmd.first }
        pid
      end

      def forget(pid)
        @lock.synchronize { @groups.delete(pid) }
      end

      # True while any process of the group (leader or not) is alive.
      def group_alive?(pgid)
        Process.kill(0, -pgid)
        true
      rescue Errno::ESRCH
        false
      rescue Errno::EPERM
        true
      end

      def kill_group(pgid, signal)
        Process.kill(signal, -pgid)
      rescue Errno::ESRCH, Errno::EPERM
        nil
      end

      def reap(pid)
        Process.waitpid(pid, Process::WNOHANG)
      rescue Errno::ECHILD
        nil
      end

      # TERM, then KILL, every group still registered.
      def cleanup!
        pids = @lock.synchronize { @groups.keys }
        return if pids.empty?

        pids.each { |pid| kill_group(pid, "TERM") }
        deadline = now + 5
        pids.each do |pid|
          sleep 0.05 while now < deadline && (reap(pid).nil? && group_alive?(pid))
          if group_alive?(pid)
            kill_group(pid, "KILL")
            begin
              Process.waitpid(pid)
            rescue Errno::ECHILD
              nil
            end
          end
          forget(pid)
        end
      end

      def now
        Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end
    end
  end

  def self.now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def self.free_port
    server = TCPServer.new(HOST, 0)
    server.addr[1]
  ensure
    server&.close
  end

  def self.port_open?(port)
    Socket.tcp(HOST, port, connect_timeout: 0.5).close
    true
  rescue SystemCallError, IOError, SocketError
    false
  end

  # ----------------------------------------------------------------- memory

  # Peak memory of a process tree, sampled from /proc while load runs: RSS
  # summed over the tree (what `ps` would add up; counts pages a fork shares
  # with its parent once per process) and PSS summed (shared pages split
  # between the processes sharing them, so closer to what the tree costs).
  class MemorySampler
    INTERVAL = 0.25

    attr_reader :peak_rss_kb, :peak_pss_kb, :max_processes, :samples

    def initialize(root_pid)
      @root_pid = root_pid
      @peak_rss_kb = 0
      @peak_pss_kb = 0
      @max_processes = 0
      @samples = 0
      @stop = false
    end

    def start
      @thread = Thread.new do
        until @stop
          sample
          sleep INTERVAL
        end
      end
      self
    end

    def stop
      @stop = true
      @thread&.join
      sample
      self
    end

    def self.tree(root)
      children = Hash.new { |h, k| h[k] = [] }
      Dir.each_child("/proc") do |entry|
        next unless entry.match?(/\A\d+\z/)

        stat = File.read("/proc/#{entry}/stat")
        # Fields after the command name, which is in parentheses and may hold spaces.
        ppid = stat[(stat.rindex(")") + 2)..].split[1].to_i
        children[ppid] << entry.to_i
      rescue SystemCallError
        next
      end
      pids = [root]
      queue = [root]
      while (pid = queue.shift)
        children[pid].each do |child|
          pids << child
          queue << child
        end
      end
      pids
    end

    def self.status_kb(pid, file, key)
      File.foreach("/proc/#{pid}/#{file}") do |line|
        return line.split[1].to_i if line.start_with?(key)
      end
      0
    rescue SystemCallError
      0
    end

    private

    def sample
      pids = self.class.tree(@root_pid).select { |pid| File.exist?("/proc/#{pid}") }
      rss = pids.sum { |pid| self.class.status_kb(pid, "status", "VmRSS:") }
      pss = pids.sum { |pid| self.class.status_kb(pid, "smaps_rollup", "Pss:") }
      @peak_rss_kb = rss if rss > @peak_rss_kb
      @peak_pss_kb = pss if pss > @peak_pss_kb
      @max_processes = pids.size if pids.size > @max_processes
      @samples += 1
    end
  end

  # -------------------------------------------------------------------- cpu

  # Where the machine's CPU went during a measured window: the server's
  # process tree, wrk, this script, and everything else ("other": builds,
  # other sessions, the hypervisor's steal time). A window with much "other"
  # was measured on a busy machine.
  class CpuWindow
    HZ = Etc.sysconf(Etc::SC_CLK_TCK).to_f

    def initialize(server_pid)
      @server_pid = server_pid
    end

    def start
      @started = BenchCompare.now
      @busy0 = self.class.machine_busy_ticks
      @tree0 = self.class.tree_ticks(@server_pid)
      times = Process.times
      @own0 = times.utime + times.stime
      @children0 = times.cutime + times.cstime
      self
    end

    # Call after wrk was reaped and before the server stops. Returns cores
    # used on average over the window: { server:, wrk:, other: }.
    def finish
      elapsed = BenchCompare.now - @started
      busy = (self.class.machine_busy_ticks - @busy0) / HZ
      server = (self.class.tree_ticks(@server_pid) - @tree0) / HZ
      times = Process.times
      own = times.utime + times.stime - @own0
      wrk = times.cutime + times.cstime - @children0
      other = [busy - server - wrk - own, 0].max
      { server: server / elapsed, wrk: wrk / elapsed, other: other / elapsed }
    end

    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    def self.machine_busy_ticks
      fields = File.foreach("/proc/stat").first.split[1..8].map(&:to_i)
      fields.sum - fields[3] - fields[4]
    end

    def self.tree_ticks(root)
      MemorySampler.tree(root).sum do |pid|
        stat = File.read("/proc/#{pid}/stat")
        fields = stat[(stat.rindex(")") + 2)..].split
        fields[11].to_i + fields[12].to_i # utime, stime
      rescue SystemCallError
        0
      end
    end
  end

  # -------------------------------------------------------------------- wrk

  module Wrk
    UNITS_MS = { "us" => 0.001, "ms" => 1.0, "s" => 1000.0, "m" => 60_000.0, "h" => 3_600_000.0 }.freeze

    def self.command(options, url, duration:, latency:)
      ["wrk", "-t#{options.wrk_threads}", "-c#{options.connections}", "-d#{duration}s",
       *(latency ? ["--latency"] : []), url]
    end

    # Runs wrk in its own process group; returns [output, status]. Killed if
    # it overruns its window by a wide margin.
    def self.run(cmd, duration)
      output_file = Tempfile.create("kino-bench-wrk")
      pid = Processes.spawn(*cmd, out: output_file.path, err: [:child, :out])
      deadline = BenchCompare.now + duration + 30
      status = nil
      until (status = Processes.reap(pid) && $?)
        if BenchCompare.now > deadline
          Processes.kill_group(pid, "KILL")
          Process.waitpid(pid)
          status = $?
          break
        end
        sleep 0.05
      end
      Processes.forget(pid)
      [File.read(output_file.path), status]
    ensure
      if output_file
        output_file.close
        File.unlink(output_file.path) if File.exist?(output_file.path)
      end
    end

    def self.to_ms(text)
      m = text&.match(/\A([\d.]+)(us|ms|s|m|h)\z/)
      m && (m[1].to_f * UNITS_MS.fetch(m[2]))
    end

    def self.parse(output)
      result = {
        rps: output[/^Requests\/sec:\s+([\d.]+)/, 1]&.to_f,
        requests: output[/^\s*(\d+) requests in/, 1]&.to_i,
        p50_ms: to_ms(output[/^\s+50%\s+(\S+)/, 1]),
        p99_ms: to_ms(output[/^\s+99%\s+(\S+)/, 1]),
        socket_errors: { connect: 0, read: 0, write: 0, timeout: 0 },
        non_2xx: output[/Non-2xx or 3xx responses:\s+(\d+)/, 1].to_i
      }
      if (m = output.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/))
        result[:socket_errors] = { connect: m[1].to_i, read: m[2].to_i, write: m[3].to_i, timeout: m[4].to_i }
      end
      result
    end
  end

  # -------------------------------------------------------------- a server

  # One server process for one measurement: started fresh, waited for,
  # stopped with SIGTERM and waited for again.
  class ServerRun
    attr_reader :pid, :port, :log_path, :boot_seconds, :stop_seconds, :exit_status, :problems

    def initialize(target, options, log_path)
      @target = target
      @options = options
      @log_path = log_path
      @problems = []
    end

    def command
      @target.command(@port)
    end

    # Starts the server and waits until `path` answers 200 with the right
    # body. Returns nil when ready, or the reason it is not.
    def start(path, body_check)
      @port = BenchCompare.free_port
      env = child_env
      started = BenchCompare.now
      @pid = Processes.spawn(env, *command, chdir: Dir.tmpdir, in: File::NULL, %i[out err] => [@log_path, "w"])
      deadline = started + @options.boot_timeout
      loop do
        if (status = Processes.reap(@pid) && $?)
          Processes.forget(@pid)
          @exit_status = status
          @pid = nil
          return "exited during boot (#{describe_status(status)}): #{log_tail(3)}"
        end
        return "did not answer on port #{@port} within #{@options.boot_timeout}s" if BenchCompare.now > deadline

        if BenchCompare.port_open?(@port)
          answer = verify(path, body_check)
          if answer == :ok
            @boot_seconds = BenchCompare.now - started
            return nil
          end
          return answer unless answer == :retry
        end
        sleep 0.1
      end
    end

    # :ok, :retry (not listening yet) or a description of a wrong answer.
    def verify(path, body_check)
      response = Net::HTTP.start(HOST, @port, open_timeout: 2, read_timeout: 30) { |http| http.get(path) }
      @verify_body = response.body.to_s
      return :ok if response.code == "200" && body_check.call(@verify_body)

      "GET #{path} answered #{response.code} with #{@verify_body[0, 60].inspect}"
    rescue Errno::ECONNREFUSED, Errno::ECONNRESET, EOFError, Net::OpenTimeout
      :retry
    rescue Net::ReadTimeout
      "GET #{path} got no answer within 30s"
    end

    attr_reader :verify_body

    def alive?
      return false unless @pid

      if (status = Processes.reap(@pid) && $?)
        @exit_status = status
        Processes.forget(@pid)
        return false
      end
      true
    end

    # SIGTERM to the server's own process (Puma's master stops its workers
    # itself), then wait; escalate to SIGKILL on the whole group if it hangs.
    # Afterwards nothing of its process group may remain and the port must
    # be closed: a leftover server would take the next target's load.
    def stop
      pgid = @pid
      return unless pgid

      started = BenchCompare.now
      if alive?
        begin
          Process.kill("TERM", @pid)
        rescue Errno::ESRCH
          nil
        end
        deadline = started + @options.stop_timeout
        until (status = Processes.reap(@pid) && $?)
          if BenchCompare.now > deadline
            @problems << "shutdown hung: still running #{@options.stop_timeout}s after SIGTERM; sent SIGKILL"
            Processes.kill_group(pgid, "KILL")
            Process.waitpid(@pid)
            status = $?
            break
          end
          sleep 0.02
        end
        @exit_status = status
        @stop_seconds = BenchCompare.now - started
        @problems << "unclean exit after SIGTERM: #{describe_status(status)}" unless
          @target.clean_exit?(status) || @problems.any?
      else
        @problems << "server had died before SIGTERM: #{describe_status(@exit_status)}"
      end
      ensure_group_gone(pgid)
      ensure_port_closed
    ensure
      Processes.forget(pgid) if pgid
      @pid = nil
    end

    def log_tail(lines)
      File.exist?(@log_path) ? File.readlines(@log_path).last(lines).map(&:strip).join(" | ") : ""
    end

    # Lines of the server's output that look like trouble.
    def suspicious_log_lines
      return [] unless File.exist?(@log_path)

      File.readlines(@log_path).map(&:rstrip)
          .grep(/error|exception|fail|fatal|abort|segmentation|killed|timeout|cut off|warn/i)
    end

    private

    def child_env
      env = {
        "RACK_ENV" => "production",
        "BUNDLE_GEMFILE" => @target.gemfile,
        "RUBY_YJIT_ENABLE" => nil
      }
      # Only this script decides about YJIT.
      rubyopt = ENV["RUBYOPT"].to_s.split.reject { |flag| flag.start_with?("--yjit") }
      env["RUBYOPT"] = rubyopt.empty? ? nil : rubyopt.join(" ")
      env
    end

    def ensure_group_gone(pgid)
      deadline = BenchCompare.now + 3
      sleep 0.05 while Processes.group_alive?(pgid) && BenchCompare.now < deadline
      return unless Processes.group_alive?(pgid)

      @problems << "processes of its group outlived it (#{group_members(pgid).join(', ')}); sent SIGKILL"
      Processes.kill_group(pgid, "KILL")
      sleep 0.05 while Processes.group_alive?(pgid) && BenchCompare.now < deadline + 3
    end

    def group_members(pgid)
      Dir.each_child("/proc").select do |entry|
        next false unless entry.match?(/\A\d+\z/)

        stat = File.read("/proc/#{entry}/stat")
        stat[(stat.rindex(")") + 2)..].split[2].to_i == pgid
      rescue SystemCallError
        false
      end
    end

    def ensure_port_closed
      deadline = BenchCompare.now + 3
      sleep 0.05 while BenchCompare.port_open?(@port) && BenchCompare.now < deadline
      @problems << "port #{@port} still accepts connections after the server stopped" if BenchCompare.port_open?(@port)
    end

    def describe_status(status)
      return "unknown" unless status
      return "exit #{status.exitstatus}" if status.exited?

      "killed by SIG#{Signal.signame(status.termsig)}"
    end
  end

  # ---------------------------------------------------------- the app check

  # The spec-like check: the app loads, Ractor.make_shareable accepts it, and
  # every endpoint answers correctly when called from inside a Ractor.
  def self.check_app!
    app = Rack::Builder.parse_file(APP_FILE)
    app = app.first if app.is_a?(Array)
    failures = []
    failures << "app is not shareable as loaded" unless Ractor.shareable?(app)
    begin
      shared = Ractor.make_shareable(app)
      failures << "Ractor.make_shareable returned a different object" unless shared.equal?(app)
    rescue StandardError => e
      failures << "Ractor.make_shareable(app) raised #{e.class}: #{e.message}"
    end

    paths = ENDPOINTS.values.map { |e| e[:path] } + ["/no-such-path"]
    previous = Warning[:experimental]
    Warning[:experimental] = false
    answers = Ractor.new(app, paths) do |shared_app, request_paths|
      Thread.current.report_on_exception = false # the failure is reported below
      request_paths.map do |path|
        status, headers, body = shared_app.call({ "REQUEST_METHOD" => "GET", "PATH_INFO" => path })
        text = +""
        body.each { |chunk| text << chunk }
        [path, status, headers["content-type"], text]
      end
    end.take
    Warning[:experimental] = previous

    answers.each do |path, status, type, text|
      endpoint = ENDPOINTS.values.find { |e| e[:path] == path }
      if endpoint.nil?
        failures << "#{path}: expected 404 from inside a Ractor, got #{status}" unless status == 404
      elsif status != 200 || type != "text/plain" || !endpoint[:body].call(text)
        failures << "#{path}: from inside a Ractor got #{status} #{type.inspect} #{text[0, 40].inspect}"
      end
    end
    raise "bench app check failed:\n  #{failures.join("\n  ")}" unless failures.empty?

    "Ractor.make_shareable(app) ok (#{app.class}, frozen); #{answers.size} paths answered correctly from inside a Ractor"
  rescue Ractor::RemoteError => e
    raise "bench app check failed inside the Ractor: #{e.cause.class}: #{e.cause.message}"
  end

  # ------------------------------------------------------------ the runner

  Cell = Struct.new(:round, :endpoint, :target, :threads, :rps, :requests, :p50_ms, :p99_ms, :socket_errors,
                    :non_2xx, :peak_rss_kb, :peak_pss_kb, :processes, :boot_seconds, :stop_seconds, :cpu,
                    :problems, :note, :log, keyword_init: true) do
    def errors?
      socket_errors.values.sum.positive? || non_2xx.positive?
    end
  end

  class Runner
    attr_reader :cells, :skipped, :alerts, :notes

    def initialize(options, logs_dir: File.join(RESULTS_DIR, "logs"))
      @options = options
      @targets = options.targets.map { |name| Target.build(name, options) }
      @cells = []
      @skipped = {}
      @alerts = []
      @notes = []
      @logs_dir = logs_dir
      FileUtils.mkdir_p(@logs_dir)
    end

    # Round 1 runs the targets in the given order, round 2 in reverse, and so
    # on (A B, B A, A B, ...): a steady drift of the machine's speed then
    # favours neither the first nor the last target.
    def run
      @options.rounds.times do |r|
        order = r.even? ? @targets : @targets.reverse
        @options.endpoints.each do |endpoint|
          order.each do |target|
            next if @skipped.key?(target.name)

            wait_for_idle if @options.wait_idle.positive?
            measure(r + 1, endpoint, target)
            sleep @options.pause
          end
        end
      end
    end

    private

    def log(line)
      puts line
      $stdout.flush
    end

    # Other work on the machine (another build, another benchmark) takes CPU
    # from the server under test; on 2 cores it takes more from a server that
    # needs both. Waiting for a quiet moment before a run does not make the
    # run itself quiet (its "other" CPU column still says), but it avoids
    # starting in the middle of someone else's burst.
    def wait_for_idle
      started = BenchCompare.now
      busy = nil
      loop do
        before = CpuWindow.machine_busy_ticks
        sleep IDLE_PROBE
        busy = (CpuWindow.machine_busy_ticks - before) / CpuWindow::HZ / IDLE_PROBE
        return if busy < IDLE_CORES && BenchCompare.now - started <= IDLE_PROBE * 1.5

        if busy < IDLE_CORES
          log(format("... waited %.0fs for the machine to be idle", BenchCompare.now - started))
          return
        end
        break if BenchCompare.now - started >= @options.wait_idle
      end
      @notes << format("a run started on a busy machine (%.2f cores in use) after waiting %.0fs", busy,
                       BenchCompare.now - started)
      log("... machine still busy (#{format('%.2f', busy)} cores) after #{@options.wait_idle.round}s; measuring anyway")
    end

    def alert(line)
      @alerts << line
      log("!!! #{line}")
    end

    def measure(round, endpoint, target)
      spec = ENDPOINTS.fetch(endpoint)
      label = "[round #{round}/#{@options.rounds}] #{spec[:path]} #{target.name}"
      log_path = File.join(@logs_dir, "r#{round}-#{endpoint}-#{target.name}.log")
      server = ServerRun.new(target, @options, log_path)
      cell = nil
      begin
        failure = server.start(spec[:path], spec[:body])
        if failure
          handle_boot_failure(label, target, failure, server)
          return
        end
        url = "http://#{HOST}:#{server.port}#{spec[:path]}"
        @notes << "#{spec[:path]} on #{target.name} answered #{server.verify_body.inspect}" if endpoint == "io_native" && round == 1
        if @options.warmup.positive?
          out, = Wrk.run(Wrk.command(@options, url, duration: @options.warmup, latency: false), @options.warmup)
          warm = Wrk.parse(out)
          if warm[:socket_errors].values.sum.positive? || warm[:non_2xx].positive?
            alert("#{label}: errors during warm-up: #{format_errors(warm)}")
          end
        end
        sampler = MemorySampler.new(server.pid).start
        cpu = CpuWindow.new(server.pid).start
        wrk_cmd = Wrk.command(@options, url, duration: @options.duration, latency: true)
        output, status = begin
          Wrk.run(wrk_cmd, @options.duration)
        ensure
          sampler.stop
        end
        cpu_used = cpu.finish
        parsed = Wrk.parse(output)
        cell = Cell.new(round: round, endpoint: endpoint, target: target.name, threads: target.threads,
                        **parsed, cpu: cpu_used,
                        peak_rss_kb: sampler.peak_rss_kb, peak_pss_kb: sampler.peak_pss_kb,
                        processes: sampler.max_processes, boot_seconds: server.boot_seconds,
                        problems: [], log: log_path)
        cell.problems << "wrk failed (#{status.inspect}): #{output.lines.last(3).join.strip}" unless status&.success? && parsed[:rps]
        cell.problems << "server died under load" unless server.alive?
      ensure
        server.stop
      end
      cell.stop_seconds = server.stop_seconds
      cell.problems.concat(server.problems)
      # Read after the stop: the server's stdout is a file, flushed at exit.
      boot_problem = target.boot_line_problem(log_path)
      cell.problems << boot_problem if boot_problem
      suspicious = server.suspicious_log_lines
      cell.problems << "server log: #{suspicious.first(3).join(' | ')}#{suspicious.size > 3 ? " (+#{suspicious.size - 3} more)" : ''}" unless suspicious.empty?
      @cells << cell
      report_cell(label, cell)
    end

    def handle_boot_failure(label, target, failure, server)
      @skipped[target.name] = failure
      server.stop
      extra = server.problems.empty? ? "" : " (#{server.problems.join('; ')})"
      log("--- #{label}: did not boot: #{failure}#{extra}; skipping #{target.name} for the rest of the run " \
          "(log: #{relative(server.log_path)})")
    end

    def report_cell(label, cell)
      line = format("%s: %s req/s, p50 %s, p99 %s, peak RSS %.1f MiB (PSS %.1f, %d process%s), " \
                    "CPU cores server/wrk/other %s, stopped in %s",
                    label, cell.rps ? Report.number(cell.rps) : "-", Report.ms(cell.p50_ms), Report.ms(cell.p99_ms),
                    cell.peak_rss_kb / 1024.0, cell.peak_pss_kb / 1024.0, cell.processes,
                    cell.processes == 1 ? "" : "es", Report.cpu_text(cell.cpu),
                    cell.stop_seconds ? format("%.2fs", cell.stop_seconds) : "-")
      log(line)
      alert("#{label}: #{format_errors(cell)} (all answers should be 200)") if cell.errors?
      cell.problems.each { |p| alert("#{label}: #{p} (log: #{relative(cell.log)})") }
    end

    def format_errors(result)
      Report.errors_text(result.to_h)
    end

    def relative(path)
      path.delete_prefix("#{ROOT}/")
    end
  end

  # --------------------------------------------------------------- report

  module Report
    module_function

    def number(value)
      whole = value.round.to_s
      whole.reverse.scan(/\d{1,3}/).join(",").reverse
    end

    def ms(value)
      return "-" unless value
      return format("%.0fus", value * 1000) if value < 1

      value < 100 ? format("%.2fms", value) : format("%.0fms", value)
    end

    def median(values)
      sorted = values.compact.sort
      return nil if sorted.empty?

      mid = sorted.size / 2
      sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
    end

    def errors_text(result)
      s = result[:socket_errors]
      total = s.values.sum
      parts = []
      parts << "socket errors connect #{s[:connect]}, read #{s[:read]}, write #{s[:write]}, timeout #{s[:timeout]}" if total.positive?
      parts << "#{result[:non_2xx]} non-2xx/3xx" if result[:non_2xx].positive?
      parts.empty? ? "none" : parts.join("; ")
    end

    def cpu_text(cpu)
      cpu ? format("%.2f/%.2f/%.2f", cpu[:server], cpu[:wrk], cpu[:other]) : "-"
    end

    def machine
      cpu = File.foreach("/proc/cpuinfo").find { |l| l.start_with?("model name") }&.split(":", 2)&.last&.strip
      {
        nproc: Etc.nprocessors,
        cpu: cpu || "unknown",
        kernel: File.read("/proc/sys/kernel/osrelease").strip,
        ruby: RUBY_DESCRIPTION,
        loadavg: File.read("/proc/loadavg").split.first(3).join(" ")
      }
    end

    # A digest of the Kino code a run loads: lib/ (with the compiled
    # extension) and ext/ sources of the checkout. Compared before and after
    # a session, it shows when someone rebuilt or edited Kino mid-run, which
    # would make the rounds measure different code.
    def kino_fingerprint(root)
      files = Dir.glob(File.join(root, "{lib,ext}", "**", "*")).select { |f| File.file?(f) }
                 .reject { |f| f.end_with?(".o") || f.include?("/ext/kino/test/") }.sort
      digest = Digest::SHA256.new
      files.each do |f|
        digest << f.delete_prefix(root) << "\0" << File.binread(f)
      rescue SystemCallError
        digest << f << "\0(unreadable)"
      end
      digest.hexdigest[0, 12]
    end

    def versions(options)
      wrk = `wrk --version 2>&1`[/wrk \S+/] || "wrk ?"
      root = options.kino_root
      kino = File.read(File.join(root, "lib", "kino", "version.rb"))[/VERSION\s*=\s*"([^"]+)"/, 1]
      commit = `git -C #{root.shellescape} rev-parse --short HEAD 2>/dev/null`.strip
      where = if commit.empty?
                "from #{root} (not a git checkout)"
              else
                dirty = `git -C #{root.shellescape} status --porcelain 2>/dev/null`.strip.empty? ? "" : ", uncommitted changes"
                "@ #{commit}#{dirty}#{root == ROOT ? '' : " in #{root}"}"
              end
      "kino #{kino} #{where} (code digest #{kino_fingerprint(root)}), " \
        "puma #{Gem.loaded_specs['puma']&.version || '?'}, #{wrk}"
    end

    # Median req/s per target for one endpoint, over the rounds measured.
    def medians(endpoint, cells)
      cells.select { |c| c.endpoint == endpoint }.group_by(&:target)
           .transform_values { |runs| median(runs.map(&:rps)) }
    end

    # A's median divided by B's, or nil when either is missing.
    def ratio(medians, numerator, denominator)
      a = medians[numerator]
      b = medians[denominator]
      a && b&.positive? ? a / b : nil
    end

    # One column per denominator: "vs puma" holds every target's median over
    # Puma's; "vs kino-threaded" (from --ratio kino-ractor:kino-threaded) holds
    # kino-ractor's over kino-threaded's, in kino-ractor's row. Other cells: "-".
    def ratio_columns(options)
      BenchCompare.ratio_pairs(options).group_by(&:last).map do |denominator, pairs|
        [denominator, pairs.map(&:first)]
      end
    end

    # The per-endpoint table: [headers, rows, indexes of right-aligned columns].
    def table(endpoint, cells, options, skipped)
      targets = options.targets
      by_target = cells.select { |c| c.endpoint == endpoint }.group_by(&:target)
      meds = medians(endpoint, cells)
      columns = ratio_columns(options)
      headers = ["target", "workers x threads", "req/s (median)", "per round",
                 *columns.map { |denominator, _| "vs #{denominator}" },
                 "p50", "p99", "errors (all rounds)", "peak RSS MiB", "peak PSS MiB", "procs", "CPU srv/wrk/other"]
      numeric = headers.each_index.reject { |i| ["target", "per round", "errors (all rounds)"].include?(headers[i]) }
      rows = targets.map do |name|
        target = Target.build(name, options)
        ratios = columns.map do |denominator, numerators|
          value = numerators.include?(name) ? ratio(meds, name, denominator) : nil
          value ? format("%.2fx", value) : "-"
        end
        runs = by_target[name] || []
        if runs.empty?
          next [name, target.topology, skipped[name] ? "did not boot" : "no data", "-", *ratios,
                "-", "-", "-", "-", "-", "-", "-"]
        end

        rps = meds[name]
        socket = runs.map(&:socket_errors).each_with_object(Hash.new(0)) { |h, acc| h.each { |k, v| acc[k] += v } }
        err = errors_text(socket_errors: socket, non_2xx: runs.sum(&:non_2xx))
        err = "!! #{err} !!" unless err == "none"
        err += " !! problems" if runs.any? { |c| c.problems.any? }
        [name, target.topology, rps ? number(rps) : "-", runs.map { |c| c.rps ? number(c.rps) : "-" }.join(" / "),
         *ratios, ms(median(runs.map(&:p50_ms))), ms(median(runs.map(&:p99_ms))), err,
         format("%.1f", runs.map(&:peak_rss_kb).max / 1024.0), format("%.1f", runs.map(&:peak_pss_kb).max / 1024.0),
         runs.map(&:processes).max.to_s,
         cpu_text(%i[server wrk other].to_h { |k| [k, median(runs.map { |c| c.cpu && c.cpu[k] })] })]
      end
      [headers, rows, numeric]
    end

    # { "A:B" => { endpoint => ratio of medians } } for the JSON file.
    def ratio_summary(cells, options)
      BenchCompare.ratio_pairs(options).to_h do |a, b|
        ["#{a}:#{b}", options.endpoints.to_h { |e| [e, ratio(medians(e, cells), a, b)&.round(4)] }]
      end
    end

    def text_table(headers, rows, numeric)
      widths = headers.each_index.map { |i| ([headers[i]] + rows.map { |r| r[i] }).map(&:length).max }
      fmt = lambda do |cells|
        cells.each_with_index.map { |c, i| numeric.include?(i) ? c.rjust(widths[i]) : c.ljust(widths[i]) }.join("  ").rstrip
      end
      [fmt.call(headers), widths.map { |w| "-" * w }.join("  "), *rows.map { |r| fmt.call(r) }].join("\n")
    end

    def markdown_table(headers, rows, numeric)
      align = headers.each_index.map { |i| numeric.include?(i) ? "---:" : "---" }
      ["| #{headers.join(' | ')} |", "| #{align.join(' | ')} |",
       *rows.map { |r| "| #{r.map { |c| c.gsub('|', '\\|') }.join(' | ')} |" }].join("\n")
    end

    def header_lines(options, command_line, machine, started_at)
      yjit = options.yjit ? "ON (every server runs `ruby --yjit`; RSS includes YJIT's code region)" : "off (no --yjit)"
      targets = options.targets.map { |n| "#{n} = #{Target.build(n, options).describe}" }
      [
        "Machine: #{machine[:nproc]} cores (nproc), CPU #{machine[:cpu]}, Linux #{machine[:kernel]}, load average at start #{machine[:loadavg]}",
        "Ruby: #{machine[:ruby]}; YJIT for the servers: #{yjit}",
        "Versions: #{versions(options)}",
        "Command: #{command_line}",
        "Targets: #{targets.join('; ')}",
        "Load: `#{Wrk.command(options, 'http://127.0.0.1:PORT/ENDPOINT', duration: options.duration, latency: true).join(' ')}` " \
        "after a #{options.warmup}s warm-up burst with the same settings; #{options.rounds} round(s), " \
        "targets interleaved per endpoint (order reversed every other round), a fresh server for every run" \
        "#{options.wait_idle.positive? ? "; before each run, up to #{options.wait_idle.round}s waiting for an idle machine" : ''}",
        "Started: #{started_at.utc.iso8601}"
      ]
    end

    FOOTNOTE = "workers x threads: the topology each target ran (threads default to each server's own: " \
               "Kino :ractor 1, Kino :threaded 3, Puma 3). req/s: median over rounds (per-round values " \
               "follow). vs X: this row's median req/s divided by X's (ratio of medians). " \
               "p50/p99: median over rounds of wrk's latency percentiles. errors: wrk socket errors and " \
               "non-2xx/3xx answers, summed over rounds (every endpoint should answer 200). peak RSS: the " \
               "largest sum of VmRSS over the server's process tree seen during the measured windows " \
               "(Puma: master + workers, pages shared by fork counted once per process); peak PSS: the same " \
               "with shared pages split, closer to the tree's real footprint. CPU: cores in use on average " \
               "during the window (median over rounds) by the server's tree, by wrk, and by everything else " \
               "on the machine; a large \"other\" means the window was measured on a busy machine."

    # The whole report as [text for the terminal, Markdown for the file].
    # `extra` ([text lines, Markdown lines]) goes at the end (bench/modes.rb's
    # verdict).
    def render(runner, options, command_line, machine, started_at, interrupted:, title: "Kino vs Puma", extra: nil,
               header: nil)
      text = []
      md = ["# #{title}: #{started_at.utc.iso8601}", ""]
      text << "" << "=" * 100
      (header || header_lines(options, command_line, machine, started_at)).each do |line|
        text << line
        md << "- #{line}"
      end
      if interrupted
        text << "!!! INTERRUPTED: partial results"
        md << "" << "**INTERRUPTED: partial results**"
      end
      text << "=" * 100
      options.endpoints.each do |endpoint|
        headers, rows, numeric = table(endpoint, runner.cells, options, runner.skipped)
        title = "#{ENDPOINTS[endpoint][:path]}  (wrk -t#{options.wrk_threads} -c#{options.connections} " \
                "-d#{options.duration}s, YJIT #{options.yjit ? 'on' : 'off'})"
        text << "" << title << text_table(headers, rows, numeric)
        md << "" << "## #{title}" << "" << markdown_table(headers, rows, numeric)
      end
      text << "" << FOOTNOTE.scan(/.{1,100}(?:\s|\z)/).map(&:strip).join("\n")
      md << "" << FOOTNOTE
      unless runner.skipped.empty?
        text << "" << "Skipped targets:"
        md << "" << "## Skipped targets" << ""
        runner.skipped.each do |name, why|
          text << "  #{name}: #{why}"
          md << "- #{name}: #{why}"
        end
      end
      unless runner.notes.empty?
        text << "" << "Notes:"
        md << "" << "## Notes" << ""
        runner.notes.each do |note|
          text << "  #{note}"
          md << "- #{note}"
        end
      end
      if runner.alerts.empty?
        text << "" << "No socket errors, non-2xx answers, crashes, hung shutdowns or leftover processes."
        md << "" << "No socket errors, non-2xx answers, crashes, hung shutdowns or leftover processes."
      else
        text << "" << "!" * 100 << "!!! #{runner.alerts.size} PROBLEM(S):"
        md << "" << "## PROBLEMS" << ""
        runner.alerts.each do |a|
          text << "!!! #{a}"
          md << "- **#{a}**"
        end
        text << "!" * 100
      end
      if extra
        text << "" << "=" * 100 << "" << extra[0]
        md << "" << extra[1]
      end
      [text.join("\n"), "#{md.join("\n")}\n"]
    end
  end

  # ----------------------------------------------------------------- main

  # How this script was invoked, for the report header.
  def self.command_line(argv)
    "#{ENV['BUNDLE_BIN_PATH'] ? 'bundle exec ruby' : 'ruby'} " \
      "#{[$PROGRAM_NAME.delete_prefix("#{ROOT}/"), *argv].shelljoin}"
  end

  # One measuring session: the checks before it, the interleaved runs, and
  # the report (printed and written). bench/modes.rb runs one too.
  class Session
    attr_reader :options, :runner, :machine, :started_at, :command_line

    def initialize(options, command_line, title: "Kino vs Puma", logs_dir: File.join(RESULTS_DIR, "logs"))
      @options = options
      @command_line = command_line
      @title = title
      @logs_dir = logs_dir
      @interrupted = false
    end

    def interrupted?
      @interrupted
    end

    # Checks wrk and YJIT, prints the header, runs every measurement.
    # Ctrl-C/SIGTERM stop it early, keeping what was measured.
    def measure
      abort "bench: wrk is not installed" unless system("wrk --version > /dev/null 2>&1") || $?.exitstatus == 1
      if @options.yjit && !system(RbConfig.ruby, "--yjit", "-e", "exit(RubyVM::YJIT.enabled? ? 0 : 1)")
        abort "bench: this Ruby cannot run with --yjit"
      end

      @started_at = Time.now
      @machine = Report.machine
      @runner = Runner.new(@options, logs_dir: @logs_dir)
      @header = Report.header_lines(@options, @command_line, @machine, @started_at)
      @header.each { |l| puts l }
      puts
      fingerprint = Report.kino_fingerprint(@options.kino_root)
      begin
        @runner.run
      rescue Interrupt, SignalException
        @interrupted = true
        puts "\n!!! interrupted: stopping every server and wrk this script started"
      ensure
        Processes.cleanup!
      end
      after = Report.kino_fingerprint(@options.kino_root)
      unless after == fingerprint
        @runner.alerts << "Kino's code in #{@options.kino_root} changed during the run (digest #{fingerprint} -> " \
                          "#{after}): rounds may have measured different builds. Benchmark an exported commit " \
                          "with --kino-root (see bench/README.md)."
        puts "!!! #{@runner.alerts.last}"
      end
      self
    end

    # Prints the report and writes it (Markdown, plus JSON with every run's
    # raw numbers). `extra_json` is merged into the JSON.
    def report(extra: nil, extra_json: {})
      text, markdown = Report.render(@runner, @options, @command_line, @machine, @started_at,
                                     interrupted: @interrupted, title: @title, extra: extra, header: @header)
      puts text
      FileUtils.mkdir_p(File.dirname(@options.output))
      File.write(@options.output, markdown)
      json = { options: @options.to_h, machine: @machine, command: @command_line,
               ratios: Report.ratio_summary(@runner.cells, @options), cells: @runner.cells.map(&:to_h),
               skipped: @runner.skipped, alerts: @runner.alerts }.merge(extra_json)
      File.write("#{@options.output.sub(/\.md\z/, '')}.json", JSON.pretty_generate(json))
      puts "", "Written: #{@options.output.delete_prefix("#{ROOT}/")} (and .json; server logs in " \
               "#{@logs_dir.delete_prefix("#{ROOT}/")}/)"
      self
    end

    # 130 when interrupted, 1 when any measurement had a problem, else 0.
    def exit_status
      return 130 if @interrupted

      @runner.alerts.empty? ? 0 : 1
    end
  end

  def self.main(argv)
    command_line = command_line(argv)
    options = parse_options(argv.dup)

    puts "App check: #{check_app!}"
    return 0 if options.check_app

    Session.new(options, command_line).measure.report.exit_status
  ensure
    Processes.cleanup!
  end
end

if $PROGRAM_NAME == __FILE__
  begin
    exit BenchCompare.main(ARGV)
  rescue OptionParser::ParseError => e
    warn "compare.rb: #{e.message}"
    exit 2
  end
end
