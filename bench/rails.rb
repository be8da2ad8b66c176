#!/usr/bin/env ruby
# frozen_string_literal: true

# Rails on every core: examples/rails-hello (Rails 7.2, production mode)
# served by a Kino group (kino-threaded-pN: N processes, each 1 worker x 3
# threads), one Kino process (kino-threaded: 1 worker x 3 threads) and a
# Puma cluster (puma-pN: N forked workers x 3 threads), N = cores, in
# interleaved rounds by the harness in bench/lib, as bench/compare.rb
# measures bench_app.ru. After the usual tables it prints the verdict: the
# group's median req/s over Puma's (target >= 1.0) and its peak PSS
# against Puma's (target: no more), per endpoint.
#
#   bundle exec ruby bench/rails.rb                     # 3 rounds x 10 s, / and /hello.json, YJIT off
#   bundle exec ruby bench/rails.rb --yjit              # every server under ruby --yjit
#   bundle exec ruby bench/rails.rb --kino-root /tmp/kino-SHA --wait-idle 20
#   bundle exec rake bench:rails                        # the same; BENCH_ARGS="--yjit" adds flags
#
# Exit status: 0 when both targets are met and every measurement was clean;
# 1 when a measurement had a problem, whatever the figures; 3 when the
# measurements were clean but a target was missed; 130 when interrupted.

require_relative "lib/bench"

# rails.rb's flags, its verdict and its exit status; the measuring is
# Bench::Session's, on the rails_hello workload.
module BenchRails
  OUTPUT = File.join(Bench::RESULTS_DIR, "rails.md")
  ENDPOINTS = %w[text json].freeze

  def self.targets(processes)
    { group: "kino-threaded-p#{processes}", single: "kino-threaded", puma: "puma-p#{processes}" }
  end

  def self.parse_options(argv)
    processes = Etc.nprocessors.clamp(2, nil)
    o = Bench::Options.new(
      rounds: 3, duration: 10, warmup: 2, connections: 64, wrk_threads: 2, endpoints: ENDPOINTS.dup,
      targets: nil, workers: 1, threads: nil, ratios: nil, yjit: false, output: OUTPUT, pause: 1.0,
      wait_idle: 0.0, boot_timeout: 120.0, stop_timeout: 30.0, check_app: false, kino_root: Bench::ROOT
    )
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby bench/rails.rb [options]\n\n" \
                    "examples/rails-hello on a Kino group, one Kino process and a Puma cluster, interleaved.\n\n"
      opts.on("--rounds N", Integer, "Rounds (default #{o.rounds})") { |v| o.rounds = v }
      opts.on("-d", "--duration SECONDS", Integer, "Measured window per run (default #{o.duration})") do |v|
        o.duration = v
      end
      opts.on("--warmup SECONDS", Integer, "Warm-up burst before each window (default #{o.warmup})") do |v|
        o.warmup = v
      end
      opts.on("-c", "--connections N", Integer, "wrk connections (default #{o.connections})") { |v| o.connections = v }
      opts.on("--wrk-threads N", Integer, "wrk threads (default #{o.wrk_threads})") { |v| o.wrk_threads = v }
      opts.on("-e", "--endpoints LIST", Array, "From #{ENDPOINTS.join(',')} (default: both)") { |v| o.endpoints = v }
      opts.on("-p", "--processes N", Integer,
              "Processes of the Kino group and of the Puma cluster (default nproc, at least 2: #{processes})") do |v|
        processes = v
      end
      opts.on("-t", "--threads N", Integer, "Threads per worker for every server (default 3, as config/kino.rb " \
                                            "and Puma say)") { |v| o.threads = v }
      opts.on("--[no-]yjit", "Run every server with ruby --yjit (default off)") { |v| o.yjit = v }
      opts.on("-o", "--output FILE", "Markdown report (default bench/results/rails.md, and .json)") do |v|
        o.output = File.expand_path(v)
      end
      opts.on("--pause SECONDS", Float, "Idle time between runs (default #{o.pause})") { |v| o.pause = v }
      opts.on("--wait-idle SECONDS", Float, "Before each run, wait up to SECONDS for an idle machine " \
                                            "(default 0: don't wait)") { |v| o.wait_idle = v }
      opts.on("--kino-root DIR", "Kino checkout to run, with its examples/rails-hello (default: this one)") do |v|
        o.kino_root = File.expand_path(v)
      end
      opts.on("-h", "--help") do
        puts opts
        exit 0
      end
    end.parse!(argv)
    raise OptionParser::InvalidArgument, "unexpected argument(s): #{argv.join(' ')}" unless argv.empty?

    names = targets(processes)
    o.targets = names.values
    o.ratios = [[names[:group], names[:puma]], [names[:single], names[:puma]], [names[:group], names[:single]]]
    o.workload = Bench::Workload.rails_hello(o.kino_root)
    check_bundle!(o.workload)
    [o.validate!, names]
  end

  def self.check_bundle!(workload)
    ok = system({ "BUNDLE_GEMFILE" => workload.gemfile }, "bundle", "check",
                chdir: workload.dir, out: File::NULL, err: File::NULL)
    abort "rails.rb: #{workload.name}'s bundle is not installed: run bin/setup" unless ok
  end

  # { rows:, pass:, text:, markdown: }: per endpoint, the group's median
  # req/s over Puma's and the two peak PSS figures of the tables.
  def self.verdict(session, names)
    options = session.options
    cells = session.runner.cells
    rows = options.endpoints.map do |endpoint|
      ratio = Bench::Stats.ratio(Bench::Stats.medians(endpoint, cells), names[:group], names[:puma])
      pss = %i[group puma].to_h do |key|
        runs = cells.select { |c| c.endpoint == endpoint && c.target == names[key] }
        [key, runs.empty? ? nil : runs.map(&:peak_pss_kb).max / 1024.0]
      end
      throughput = ratio && ratio >= 1.0
      memory = pss.values.all? && pss[:group] <= pss[:puma]
      { endpoint: endpoint, ratio: ratio, pss: pss, pass: throughput && memory,
        result: "#{throughput ? 'PASS' : 'MISS'} req/s, #{memory ? 'PASS' : 'MISS'} PSS" }
    end
    pass = rows.all? { |r| r[:pass] }
    text, markdown = render(options, names, rows, pass, session.runner.alerts.size)
    { rows: rows, pass: pass, text: text, markdown: markdown }
  end

  def self.render(options, names, rows, pass, problems)
    yjit = options.yjit ? "YJIT ON" : "YJIT off"
    title = "Target: #{names[:group]} req/s >= #{names[:puma]}'s, with no more peak PSS (#{yjit}; " \
            "#{options.rounds} rounds x #{options.duration}s)"
    headers = ["endpoint", "req/s #{names[:group]} / #{names[:puma]}", "peak PSS MiB #{names[:group]}",
               "peak PSS MiB #{names[:puma]}", "result"]
    table = rows.map do |r|
      [options.workload.endpoints.fetch(r[:endpoint])[:path], r[:ratio] ? format("%.2fx", r[:ratio]) : "-",
       *r[:pss].values.map { |v| v ? format("%.1f", v) : "-" }, r[:result]]
    end
    overall = if problems.positive? then "NOT CLEAN: #{problems} measurement problem(s) above"
              elsif pass then "PASS: both targets met on every endpoint"
              else "MISSED: see the rows above, and doc/benchmarks.md for why"
              end
    tables = Bench::Tables
    text = [title, tables.text(headers, table, [1, 2, 3]), "", "Overall: #{overall}"].join("\n")
    markdown = ["## #{title}", "", tables.markdown(headers, table, [1, 2, 3]), "", "- **Overall: #{overall}**"]
    [text, markdown.join("\n")]
  end

  def self.main(argv)
    command_line = Bench.command_line(argv)
    options, names = parse_options(argv.dup)
    session = Bench::Session.new(options, command_line, title: "Rails: Kino processes vs Puma cluster",
                                                        logs_dir: File.join(Bench::RESULTS_DIR, "logs", "rails"))
    session.measure
    v = verdict(session, names)
    session.conclude(v, target: { rows: v[:rows], pass: v[:pass] })
  ensure
    Bench::Processes.cleanup!
  end
end

Bench.run_script("rails.rb") { BenchRails.main(ARGV) } if $PROGRAM_NAME == __FILE__
