#!/usr/bin/env ruby
# frozen_string_literal: true

# The acceptance check for Kino's :ractor mode: kino-ractor against
# kino-threaded on the same app, each with its own default threads per
# worker (1 and 3) and workers = cores, measured in interleaved rounds by
# the harness in bench/lib, as bench/compare.rb is. It prints the usual
# per-endpoint tables, then the verdict: ractor/threaded ratio of median
# req/s on /cpu (target >= 1.7) and /plaintext (target >= 0.9), PASS or
# FAIL, and each mode's peak RSS.
#
#   bundle exec ruby bench/modes.rb                  # 5 rounds x 8 s, /plaintext and /cpu
#   bundle exec ruby bench/modes.rb --all            # also /io and /io_native (no targets there)
#   bundle exec ruby bench/modes.rb --yjit           # both servers under ruby --yjit
#   bundle exec rake bench:modes                     # the same; BENCH_ARGS="--all" adds flags
#
# Exit status: 0 when both targets are met and every measurement was clean;
# 1 when a measurement had a problem (errors, crash, hung shutdown, ...),
# whatever the ratios; 3 when the measurements were clean but a target was
# missed; 130 when interrupted.

require_relative "lib/bench"

# modes.rb's flags, the verdict it adds to the session's report, and its
# exit status (3 when a target is missed).
module BenchModes
  RACTOR = "kino-ractor"
  THREADED = "kino-threaded"
  # Minimum ratio of median req/s, kino-ractor over kino-threaded.
  TARGETS = { "cpu" => 1.7, "plaintext" => 0.9 }.freeze
  ENDPOINTS = %w[plaintext cpu].freeze
  ALL_ENDPOINTS = %w[plaintext cpu io io_native].freeze
  OUTPUT = File.join(Bench::RESULTS_DIR, "modes.md")
  # A run is "quiet" when the rest of the machine (neither the server nor
  # wrk) used fewer cores than this on average during its window.
  QUIET_OTHER = 0.25

  def self.parse_options(argv)
    o = Bench::Options.new(
      rounds: 5, duration: 8, warmup: 2, connections: 64, wrk_threads: 2,
      endpoints: ENDPOINTS.dup, targets: [RACTOR, THREADED],
      workers: Etc.nprocessors, threads: nil, ratios: [[RACTOR, THREADED]],
      yjit: false, output: OUTPUT, pause: 1.0, wait_idle: 30.0, boot_timeout: 60.0, stop_timeout: 20.0,
      check_app: false, kino_root: Bench::ROOT
    )
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby bench/modes.rb [options]\n\n" \
                    "kino-ractor vs kino-threaded, interleaved rounds; checks /cpu >= #{TARGETS['cpu']}x " \
                    "and /plaintext >= #{TARGETS['plaintext']}x.\n\n"
      opts.on("--rounds N", Integer, "Rounds (default #{o.rounds})") { |v| o.rounds = v }
      opts.on("-d", "--duration SECONDS", Integer,
              "Measured window per run (default #{o.duration})") { |v| o.duration = v }
      opts.on("--warmup SECONDS", Integer,
              "Warm-up burst before each window (default #{o.warmup})") { |v| o.warmup = v }
      opts.on("-c", "--connections N", Integer, "wrk connections (default #{o.connections})") { |v| o.connections = v }
      opts.on("--wrk-threads N", Integer, "wrk threads (default #{o.wrk_threads})") { |v| o.wrk_threads = v }
      opts.on("--all", "Also measure /io and /io_native (reported, no target)") { o.endpoints = ALL_ENDPOINTS.dup }
      opts.on("-w", "--workers N", Integer,
              "Workers for both modes (default nproc = #{o.workers})") { |v| o.workers = v }
      opts.on("-t", "--threads N", Integer, "Threads per worker for both modes (default: each mode's own, 1 and 3;",
              "the acceptance targets are meant for the defaults)") { |v| o.threads = v }
      opts.on("--[no-]yjit", "Run both servers with ruby --yjit (default off)") { |v| o.yjit = v }
      opts.on("-o", "--output FILE",
              "Markdown report (default bench/results/modes.md, and .json)") { |v| o.output = File.expand_path(v) }
      opts.on("--pause SECONDS", Float, "Idle time between runs (default #{o.pause})") { |v| o.pause = v }
      opts.on("--wait-idle SECONDS", Float, "Before each run, wait up to SECONDS for an idle machine; 0: don't wait",
              "(default #{o.wait_idle.round})") { |v| o.wait_idle = v }
      opts.on("--kino-root DIR", "Kino checkout to run (default: this one)") { |v| o.kino_root = File.expand_path(v) }
      opts.on("-h", "--help") do
        puts opts
        exit 0
      end
    end.parse!(argv)
    raise OptionParser::InvalidArgument, "unexpected argument(s): #{argv.join(' ')}" unless argv.empty?

    o.validate!
  end

  # The verdict: { rows:, rss:, pass:, text:, markdown: }.
  def self.verdict(session)
    options = session.options
    cells = session.runner.cells
    stats = Bench::Stats
    rows = options.endpoints.map do |endpoint|
      meds = stats.medians(endpoint, cells)
      ratio = stats.ratio(meds, RACTOR, THREADED)
      target = TARGETS[endpoint]
      result = if target.nil? then "(no target)"
               elsif ratio.nil? then "FAIL (no data)"
               elsif ratio >= target then "PASS"
               else "FAIL"
               end
      # Each round's ratio: the two runs of a round ran back to back.
      per_round = (1..options.rounds).filter_map do |round|
        a = cells.find { |c| c.endpoint == endpoint && c.round == round && c.target == RACTOR }&.rps
        b = cells.find { |c| c.endpoint == endpoint && c.round == round && c.target == THREADED }&.rps
        a && b&.positive? ? a / b : nil
      end
      # The same ratio of medians over the quiet runs only.
      quiet = [RACTOR, THREADED].to_h do |t|
        quiet_runs = cells.select do |c|
          c.endpoint == endpoint && c.target == t && c.rps && c.cpu && c.cpu[:other] < QUIET_OTHER
        end
        [t, quiet_runs.map(&:rps)]
      end
      quiet_ratio = stats.ratio(quiet.transform_values { |v| stats.median(v) }, RACTOR, THREADED)
      cpu = [RACTOR, THREADED].map do |t|
        stats.median(cells.select { |c| c.endpoint == endpoint && c.target == t }.map { |c| c.cpu && c.cpu[:server] })
      end
      { endpoint: endpoint, ractor: meds[RACTOR], threaded: meds[THREADED], ratio: ratio, target: target,
        result: result, per_round: per_round, per_round_median: stats.median(per_round),
        quiet_runs: quiet.transform_values(&:size), quiet_ratio: quiet_ratio,
        server_cpu: cpu }
    end
    rss = [RACTOR, THREADED].to_h do |t|
      mine = cells.select { |c| c.target == t }
      [t, { peak_rss_mib: mine.empty? ? nil : mine.map(&:peak_rss_kb).max / 1024.0,
            by_endpoint: options.endpoints.to_h do |e|
              runs = mine.select { |c| c.endpoint == e }
              [e, runs.empty? ? nil : (runs.map(&:peak_rss_kb).max / 1024.0).round(1)]
            end }]
    end
    targeted = rows.select { |r| r[:target] }
    pass = targeted.all? { |r| r[:result] == "PASS" }
    text, markdown = render(options, rows, rss, pass, session.runner.alerts.size)
    { rows: rows, rss: rss, pass: pass, text: text, markdown: markdown }
  end

  def self.render(options, rows, rss, pass, problems)
    figures = Bench::Figures
    tables = Bench::Tables
    yjit = options.yjit ? "YJIT ON" : "YJIT off"
    threads = [RACTOR, THREADED].map { |t| "#{t} #{options.workers} x #{Bench::Target.build(t, options).threads}" }
    title = "Acceptance: #{RACTOR} / #{THREADED} (#{threads.join(', ')}; #{yjit}; " \
            "#{options.rounds} rounds x #{options.duration}s, wrk -t#{options.wrk_threads} -c#{options.connections})"
    headers = ["endpoint", "ractor req/s", "threaded req/s", "ratio", "target", "result", "per-round ratios",
               "their median", "quiet runs only", "server CPU ractor/threaded"]
    table_rows = rows.map do |r|
      [ENDPOINT_PATH.call(r[:endpoint]), r[:ractor] ? figures.number(r[:ractor]) : "-",
       r[:threaded] ? figures.number(r[:threaded]) : "-", r[:ratio] ? format("%.2fx", r[:ratio]) : "-",
       r[:target] ? format(">= %.1fx", r[:target]) : "-", r[:result],
       r[:per_round].map { |v| format("%.2f", v) }.join(" / "),
       r[:per_round_median] ? format("%.2fx", r[:per_round_median]) : "-",
       if r[:quiet_ratio]
         format("%.2fx (%d+%d runs)", r[:quiet_ratio], r[:quiet_runs][RACTOR], r[:quiet_runs][THREADED])
       else
         "- (#{r[:quiet_runs][RACTOR]}+#{r[:quiet_runs][THREADED]} runs)"
       end,
       r[:server_cpu].map { |v| v ? format("%.2f", v) : "-" }.join(" / ")]
    end
    numeric = [1, 2, 3, 7, 8, 9]
    rss_line = "Peak RSS (#{yjit}), largest over every measured window: " +
               rss.map do |t, v|
                 per = v[:by_endpoint].map { |e, mib| "#{ENDPOINT_PATH.call(e)} #{mib || '-'}" }.join(", ")
                 "#{t} #{v[:peak_rss_mib] ? format('%.1f', v[:peak_rss_mib]) : '-'} MiB (#{per})"
               end.join("; ")
    overall = if problems.positive?
                "NOT CLEAN: #{problems} measurement problem(s) above; the ratios are #{pass ? 'met' : 'not all met'} " \
                  "but do not count until a clean run"
              elsif pass
                "PASS: every target met"
              else
                missed = rows.select { |r| r[:target] && r[:result] != "PASS" }
                "FAIL: #{missed.map { |r| ENDPOINT_PATH.call(r[:endpoint]) }.join(', ')} below target"
              end
    note = "ratio: kino-ractor's median req/s over kino-threaded's; the verdict uses it. per-round ratios: " \
           "the two runs of each round, which ran back to back, and their median (less sensitive to drift " \
           "between rounds than the ratio of medians). quiet runs only: the ratio of medians over the runs " \
           "during which the rest of the machine used under #{QUIET_OTHER} cores (how many of each mode), for " \
           "context only: other load takes more from :ractor, which needs both cores, than from :threaded, " \
           "which uses one. server CPU: cores the server used on average (median over rounds)."
    text = [title, tables.text(headers, table_rows, numeric), "", rss_line, "", "Overall: #{overall}",
            "", tables.wrap(note)].join("\n")
    markdown = ["## #{title}", "", tables.markdown(headers, table_rows, numeric), "", "- #{rss_line}",
                "- **Overall: #{overall}**", "", note].join("\n")
    [text, markdown]
  end

  ENDPOINT_PATH = ->(endpoint) { Bench::ENDPOINTS.fetch(endpoint)[:path] }

  def self.main(argv)
    command_line = Bench.command_line(argv)
    options = parse_options(argv.dup)
    puts "App check: #{Bench::AppCheck.run!}"
    session = Bench::Session.new(options, command_line, title: "Kino :ractor vs :threaded",
                                                        logs_dir: File.join(Bench::RESULTS_DIR, "logs", "modes"))
    session.measure
    v = verdict(session)
    session.conclude(v, acceptance: { targets: TARGETS, rows: v[:rows], peak_rss: v[:rss], pass: v[:pass] })
  ensure
    Bench::Processes.cleanup!
  end
end

Bench.run_script("modes.rb") { BenchModes.main(ARGV) } if $PROGRAM_NAME == __FILE__
