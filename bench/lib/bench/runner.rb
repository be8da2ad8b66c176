# frozen_string_literal: true

module Bench
  # The measurements of a session, in interleaved rounds: for each round,
  # for each endpoint, every target once, each on a fresh server.
  class Runner
    # --wait-idle: the machine counts as idle when, over one probe,
    # everything running on it used fewer cores than this.
    IDLE_CORES = 0.25
    IDLE_PROBE = 1.0

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
      note_unserved
    end

    # Round 1 runs the targets in the given order, round 2 in reverse, and so
    # on (A B, B A, A B, ...): a steady drift of the machine's speed then
    # favours neither the first nor the last target.
    def run
      @options.rounds.times do |r|
        order = r.even? ? @targets : @targets.reverse
        @options.endpoints.each do |endpoint|
          order.each do |target|
            next if @skipped.key?(target.name) || !target.serves?(endpoint)

            wait_for_idle if @options.wait_idle.positive?
            measure(r + 1, endpoint, target)
            sleep @options.pause
          end
        end
      end
    end

    private

    # A target that does not answer every endpoint measured (nginx) runs on
    # the others only; the report says which it left out.
    def note_unserved
      paths = ->(endpoints) { endpoints.map { |e| @options.workload.endpoints.fetch(e)[:path] }.join(", ") }
      @targets.each do |target|
        unserved = @options.endpoints.reject { |e| target.serves?(e) }
        next if unserved.empty?

        @notes << "#{target.name} does not answer #{paths.call(unserved)}: not measured there"
        log("--- #{@notes.last}")
      end
    end

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
      started = Bench.now
      busy = nil
      loop do
        before = ProcFs.machine_busy_ticks
        sleep IDLE_PROBE
        busy = (ProcFs.machine_busy_ticks - before) / ProcFs::HZ / IDLE_PROBE
        return if busy < IDLE_CORES && Bench.now - started <= IDLE_PROBE * 1.5

        if busy < IDLE_CORES
          log(format("... waited %.0fs for the machine to be idle", Bench.now - started))
          return
        end
        break if Bench.now - started >= @options.wait_idle
      end
      @notes << format("a run started on a busy machine (%.2f cores in use) after waiting %.0fs", busy,
                       Bench.now - started)
      log("... machine still busy (#{format('%.2f', busy)} cores) after #{@options.wait_idle.round}s; measuring anyway")
    end

    def alert(line)
      @alerts << line
      log("!!! #{line}")
    end

    def measure(round, endpoint, target)
      spec = @options.workload.endpoints.fetch(endpoint)
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
        url = "#{@options.url_scheme}://#{HOST}:#{server.port}#{spec[:path]}"
        if endpoint == "io_native" && round == 1
          @notes << "#{spec[:path]} on #{target.name} answered #{server.verify_body.inspect}"
        end
        warm_up(label, url) if @options.warmup.positive?
        cell = measure_window(round, endpoint, target, server, url)
      ensure
        server.stop
      end
      cell.stop_seconds = server.stop_seconds
      cell.problems.concat(server.problems)
      # Read after the stop: the server's stdout is a file, flushed at exit.
      boot_problem = target.boot_line_problem(log_path)
      cell.problems << boot_problem if boot_problem
      suspicious = server.suspicious_log_lines
      unless suspicious.empty?
        more = " (+#{suspicious.size - 3} more)" if suspicious.size > 3
        cell.problems << "server log: #{suspicious.first(3).join(' | ')}#{more}"
      end
      @cells << cell
      report_cell(label, cell)
    end

    # Not measured, but errors during it are reported.
    def warm_up(label, url)
      out, = Wrk.run(Wrk.command(@options, url, duration: @options.warmup, latency: false), @options.warmup)
      warm = Wrk.parse(out)
      alert("#{label}: errors during warm-up: #{Figures.errors_text(warm)}") if Wrk.errors?(warm)
    end

    # The measured window: wrk with latency, memory sampled and CPU counted
    # meanwhile. Returns its Cell.
    def measure_window(round, endpoint, target, server, url)
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
                      problems: [], log: server.log_path)
      unless status&.success? && parsed[:rps]
        cell.problems << "wrk failed (#{status.inspect}): #{output.lines.last(3).join.strip}"
      end
      cell.problems << "server died under load" unless server.alive?
      cell
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
                    label, cell.rps ? Figures.number(cell.rps) : "-", Figures.ms(cell.p50_ms), Figures.ms(cell.p99_ms),
                    cell.peak_rss_kb / 1024.0, cell.peak_pss_kb / 1024.0, cell.processes,
                    cell.processes == 1 ? "" : "es", Figures.cpu_text(cell.cpu),
                    cell.stop_seconds ? format("%.2fs", cell.stop_seconds) : "-")
      log(line)
      alert("#{label}: #{Figures.errors_text(cell.to_h)} (all answers should be 200)") if cell.errors?
      cell.problems.each { |p| alert("#{label}: #{p} (log: #{relative(cell.log)})") }
    end

    def relative(path)
      path.delete_prefix("#{ROOT}/")
    end
  end
end
