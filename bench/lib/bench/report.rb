# frozen_string_literal: true

module Bench
  # A session's report: the header, one table per endpoint, the footnote,
  # skipped targets, notes and problems; for the terminal and in Markdown.
  module Report
    module_function

    # One column per denominator: "vs puma" holds every target's median over
    # Puma's; "vs kino-threaded" (from --ratio kino-ractor:kino-threaded) holds
    # kino-ractor's over kino-threaded's, in kino-ractor's row. Other cells: "-".
    def ratio_columns(options)
      options.ratio_pairs.group_by(&:last).map do |denominator, pairs|
        [denominator, pairs.map(&:first)]
      end
    end

    # The per-endpoint table: [headers, rows, indexes of right-aligned columns].
    def table(endpoint, cells, options, skipped)
      by_target = cells.select { |c| c.endpoint == endpoint }.group_by(&:target)
      meds = Stats.medians(endpoint, cells)
      columns = ratio_columns(options)
      headers = ["target", "workers x threads", "req/s (median)", "per round",
                 *columns.map { |denominator, _| "vs #{denominator}" },
                 "p50", "p99", "errors (all rounds)", "peak RSS MiB", "peak PSS MiB", "procs", "CPU srv/wrk/other"]
      numeric = headers.each_index.reject { |i| ["target", "per round", "errors (all rounds)"].include?(headers[i]) }
      rows = options.targets.map do |name|
        target = Target.build(name, options)
        ratios = columns.map do |denominator, numerators|
          value = numerators.include?(name) ? Stats.ratio(meds, name, denominator) : nil
          value ? format("%.2fx", value) : "-"
        end
        runs = by_target[name] || []
        next [name, target.topology, missing_text(target, endpoint, skipped), "-", *ratios, *["-"] * 7] if
          runs.empty?

        row(name, target, runs, meds[name], ratios)
      end
      [headers, rows, numeric]
    end

    # Why a target's row has no figures.
    def missing_text(target, endpoint, skipped)
      return "not served" unless target.serves?(endpoint)

      skipped[target.name] ? "did not boot" : "no data"
    end

    # One target's row over the rounds it ran.
    def row(name, target, runs, rps, ratios)
      socket = runs.map(&:socket_errors).each_with_object(Hash.new(0)) { |h, acc| h.each { |k, v| acc[k] += v } }
      err = Figures.errors_text(socket_errors: socket, non_2xx: runs.sum(&:non_2xx))
      err = "!! #{err} !!" unless err == "none"
      err += " !! problems" if runs.any? { |c| c.problems.any? }
      per_round = runs.map { |c| c.rps ? Figures.number(c.rps) : "-" }.join(" / ")
      [name, target.topology, rps ? Figures.number(rps) : "-", per_round, *ratios,
       Figures.ms(Stats.median(runs.map(&:p50_ms))), Figures.ms(Stats.median(runs.map(&:p99_ms))), err,
       format("%.1f", runs.map(&:peak_rss_kb).max / 1024.0), format("%.1f", runs.map(&:peak_pss_kb).max / 1024.0),
       runs.map(&:processes).max.to_s,
       Figures.cpu_text(%i[server wrk other].to_h { |k| [k, Stats.median(runs.map { |c| c.cpu && c.cpu[k] })] })]
    end

    # { "A:B" => { endpoint => ratio of medians } } for the JSON file.
    def ratio_summary(cells, options)
      options.ratio_pairs.to_h do |a, b|
        ["#{a}:#{b}", options.endpoints.to_h { |e| [e, Stats.ratio(Stats.medians(e, cells), a, b)&.round(4)] }]
      end
    end

    def header_lines(options, command_line, machine, started_at)
      yjit = options.yjit ? "ON (every server runs `ruby --yjit`; RSS includes YJIT's code region)" : "off (no --yjit)"
      targets = options.targets.map { |n| "#{n} = #{Target.build(n, options).describe}" }
      load = Wrk.command(options, "#{options.url_scheme}://127.0.0.1:PORT/ENDPOINT", duration: options.duration,
                                                                                     latency: true)
      idle_wait = options.wait_idle.positive?
      [
        Provenance.machine_line(machine),
        "Ruby: #{machine[:ruby]}; YJIT for the servers: #{yjit}",
        *(options.tls ? ["TLS: every server serves HTTPS with one self-signed certificate (#{options.tls.cert})"] : []),
        "Versions: #{Provenance.versions(options.kino_root)}",
        "Command: #{command_line}",
        "Targets: #{targets.join('; ')}",
        "Load: `#{load.join(' ')}` " \
        "after a #{options.warmup}s warm-up burst with the same settings; #{options.rounds} round(s), " \
        "targets interleaved per endpoint (order reversed every other round), a fresh server for every run" \
        "#{"; before each run, up to #{options.wait_idle.round}s waiting for an idle machine" if idle_wait}",
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

    CLEAN = "No socket errors, non-2xx answers, crashes, hung shutdowns or leftover processes."

    # The whole report as [text for the terminal, Markdown for the file].
    # `extra` ([text lines, Markdown lines]) goes at the end (bench/modes.rb's
    # verdict).
    def render(runner, options, header, started_at, interrupted:, title:, extra: nil)
      text = []
      md = ["# #{title}: #{started_at.utc.iso8601}", ""]
      text << "" << ("=" * 100)
      header.each do |line|
        text << line
        md << "- #{line}"
      end
      if interrupted
        text << "!!! INTERRUPTED: partial results"
        md << "" << "**INTERRUPTED: partial results**"
      end
      text << ("=" * 100)
      options.endpoints.each do |endpoint|
        headers, rows, numeric = table(endpoint, runner.cells, options, runner.skipped)
        path = options.workload.endpoints[endpoint][:path]
        heading = "#{path}  (wrk -t#{options.wrk_threads} -c#{options.connections} " \
                  "-d#{options.duration}s, YJIT #{options.yjit ? 'on' : 'off'})"
        text << "" << heading << Tables.text(headers, rows, numeric)
        md << "" << "## #{heading}" << "" << Tables.markdown(headers, rows, numeric)
      end
      text << "" << Tables.wrap(FOOTNOTE)
      md << "" << FOOTNOTE
      list(text, md, "Skipped targets", runner.skipped.map { |name, why| "#{name}: #{why}" })
      list(text, md, "Notes", runner.notes)
      if runner.alerts.empty?
        text << "" << CLEAN
        md << "" << CLEAN
      else
        text << "" << ("!" * 100) << "!!! #{runner.alerts.size} PROBLEM(S):"
        md << "" << "## PROBLEMS" << ""
        runner.alerts.each do |a|
          text << "!!! #{a}"
          md << "- **#{a}**"
        end
        text << ("!" * 100)
      end
      if extra
        text << "" << ("=" * 100) << "" << extra[0]
        md << "" << extra[1]
      end
      [text.join("\n"), "#{md.join("\n")}\n"]
    end

    # A titled list, indented on the terminal, a section in Markdown; nothing
    # when empty.
    def list(text, markdown, title, items)
      return if items.empty?

      text << "" << "#{title}:"
      markdown << "" << "## #{title}" << ""
      items.each do |item|
        text << "  #{item}"
        markdown << "- #{item}"
      end
    end

    # Writes the Markdown report to `output` and `json` next to it (.json
    # instead of .md).
    def write(output, markdown, json)
      FileUtils.mkdir_p(File.dirname(output))
      File.write(output, markdown)
      File.write("#{output.sub(/\.md\z/, '')}.json", JSON.pretty_generate(json))
    end
  end
end
