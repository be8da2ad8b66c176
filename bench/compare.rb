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
#   bundle exec ruby bench/compare.rb --tls -e plaintext,10k # HTTPS: Kino's tls against Puma's ssl_bind
#
# Exit status: 0 when every measurement was clean; 1 when any had socket
# errors, non-2xx/3xx answers, a wrong answer, a crash, a hung shutdown or a
# leftover process; 130 when interrupted. A target that does not boot is
# reported and skipped, and does not by itself fail the run.

require_relative "lib/bench"

# compare.rb's own flags (every one also read from a BENCH_* variable) and
# its main; the measuring is Bench::Session's.
module BenchCompare
  def self.env_int(name, default)
    ENV[name] && !ENV[name].empty? ? Integer(ENV[name]) : default
  end

  def self.env_list(name, default)
    ENV[name] && !ENV[name].empty? ? ENV[name].split(",").map(&:strip) : default
  end

  def self.defaults
    Bench::Options.new(
      rounds: env_int("BENCH_ROUNDS", 3),
      duration: env_int("BENCH_DURATION", 10),
      warmup: env_int("BENCH_WARMUP", 2),
      connections: env_int("BENCH_CONNECTIONS", 64),
      wrk_threads: env_int("BENCH_WRK_THREADS", 2),
      endpoints: env_list("BENCH_ENDPOINTS", Bench::DEFAULT_ENDPOINTS),
      targets: env_list("BENCH_TARGETS", %w[kino-threaded puma]),
      workers: env_int("BENCH_WORKERS", Etc.nprocessors),
      threads: env_int("BENCH_THREADS", nil), # nil: each target's own default
      ratios: env_list("BENCH_RATIO", []).map { |spec| Bench::Options.parse_ratio(spec) },
      yjit: %w[1 true yes on].include?(ENV["BENCH_YJIT"].to_s.downcase),
      tls: %w[1 true yes on].include?(ENV["BENCH_TLS"].to_s.downcase) || nil,
      output: File.join(Bench::RESULTS_DIR, "latest.md"),
      pause: 1.0,
      wait_idle: Float(ENV["BENCH_WAIT_IDLE"] || 0),
      boot_timeout: 60.0,
      stop_timeout: 20.0,
      check_app: false,
      kino_root: File.expand_path(ENV["BENCH_KINO_ROOT"] || Bench::ROOT)
    )
  end

  # `start`: the settings flags override (bench/studies.rb passes a study's).
  def self.parse_options(argv, start = defaults, script: "bench/compare.rb [options]")
    o = start
    kino_threads = Bench::KinoTarget::DEFAULT_THREADS
    idle = Bench::Runner
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby #{script}\n\n" \
                    "Every option also reads an environment variable (shown) for `rake bench`.\n\n"
      opts.on("--rounds N", Integer, "Rounds (BENCH_ROUNDS, default #{o.rounds})") { |v| o.rounds = v }
      opts.on("-d", "--duration SECONDS", Integer,
              "Measured window per run (BENCH_DURATION, default #{o.duration})") { |v| o.duration = v }
      opts.on("--warmup SECONDS", Integer,
              "Warm-up burst before each window, 0 for none (BENCH_WARMUP, default #{o.warmup})") { |v| o.warmup = v }
      opts.on("-c", "--connections N", Integer,
              "wrk connections (BENCH_CONNECTIONS, default #{o.connections})") { |v| o.connections = v }
      opts.on("--wrk-threads N", Integer,
              "wrk threads (BENCH_WRK_THREADS, default #{o.wrk_threads})") { |v| o.wrk_threads = v }
      opts.on("-e", "--endpoints LIST", Array,
              "Comma-separated, from #{Bench::ENDPOINTS.keys.join(',')} (BENCH_ENDPOINTS)") { |v| o.endpoints = v }
      opts.on("--targets LIST", Array,
              "Comma-separated: puma, kino-MODE (kino-threaded, kino-ractor, ...) " \
              "(BENCH_TARGETS, default #{o.targets.join(',')})") { |v| o.targets = v }
      opts.on("-w", "--workers N", Integer,
              "Workers for every server (BENCH_WORKERS, default nproc = #{o.workers})") { |v| o.workers = v }
      opts.on("-t", "--threads N", Integer,
              "Threads per worker for every server (BENCH_THREADS; default: each server's own,",
              "kino-ractor #{kino_threads['ractor']}, kino-threaded #{kino_threads['threaded']}, " \
              "puma #{Bench::PumaTarget::DEFAULT_THREADS})") { |v| o.threads = v }
      opts.on("--ratio A:B", "Add a column with A's median req/s divided by B's (repeatable; BENCH_RATIO=A:B,C:D).",
              "Every target is always compared with puma when puma runs") do |v|
        o.ratios << Bench::Options.parse_ratio(v)
      end
      opts.on("--tls", "Serve HTTPS: Kino's tls directive, Puma's ssl:// bind, one self-signed certificate",
              "made for the session (BENCH_TLS=1; default off)") { o.tls = true }
      opts.on("--[no-]yjit", "Run every server with ruby --yjit (BENCH_YJIT=1; default off)") { |v| o.yjit = v }
      opts.on("-o", "--output FILE",
              "Markdown report (default bench/results/latest.md)") { |v| o.output = File.expand_path(v) }
      opts.on("--pause SECONDS", Float, "Idle time between runs (default #{o.pause})") { |v| o.pause = v }
      opts.on("--wait-idle SECONDS", Float, "Before each run, wait up to SECONDS for the machine to be idle",
              "(under #{idle::IDLE_CORES} cores busy over #{idle::IDLE_PROBE}s) " \
              "(BENCH_WAIT_IDLE, default 0: don't wait)") { |v| o.wait_idle = v }
      opts.on("--boot-timeout SECONDS", Float,
              "How long a server may take to answer (default #{o.boot_timeout})") { |v| o.boot_timeout = v }
      opts.on("--stop-timeout SECONDS", Float,
              "How long a server may take to exit after SIGTERM (default #{o.stop_timeout})") { |v| o.stop_timeout = v }
      opts.on("--kino-root DIR", "Kino checkout to run, with its own compiled extension (BENCH_KINO_ROOT,",
              "default: this one); e.g. an exported commit, so a rebuild here cannot change it mid-run") do |v|
        o.kino_root = File.expand_path(v)
      end
      opts.on("--check-app",
              "Only check that the app is Ractor-shareable and answers, then exit") { o.check_app = true }
      opts.on("-h", "--help") do
        puts opts
        exit 0
      end
    end.parse!(argv)

    o.tls = Bench::TlsFiles.create(File.join(Bench::RESULTS_DIR, "tls")) if o.tls
    o.validate!
  end

  def self.main(argv)
    command_line = Bench.command_line(argv)
    options = parse_options(argv.dup)

    puts "App check: #{Bench::AppCheck.run!}"
    return 0 if options.check_app

    Bench::Session.new(options, command_line).measure.report.exit_status
  ensure
    Bench::Processes.cleanup!
  end
end

Bench.run_script("compare.rb") { BenchCompare.main(ARGV) } if $PROGRAM_NAME == __FILE__
