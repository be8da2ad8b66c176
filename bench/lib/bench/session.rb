# frozen_string_literal: true

module Bench
  # One measuring session: the checks before it, the interleaved runs, and
  # the report (printed and written). bench/compare.rb and bench/modes.rb
  # each run one.
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
      abort "bench: wrk is not installed" unless Wrk.installed?
      if @options.yjit && !system(RbConfig.ruby, "--yjit", "-e", "exit(RubyVM::YJIT.enabled? ? 0 : 1)")
        abort "bench: this Ruby cannot run with --yjit"
      end

      @started_at = Time.now
      @machine = Provenance.machine
      @runner = Runner.new(@options, logs_dir: @logs_dir)
      @header = Report.header_lines(@options, @command_line, @machine, @started_at)
      @header.each { |l| puts l }
      puts
      fingerprint = Provenance.kino_fingerprint(@options.kino_root)
      begin
        @runner.run
      rescue SignalException # Interrupt (Ctrl-C) is one too
        @interrupted = true
        puts "\n!!! interrupted: stopping every server and wrk this script started"
      ensure
        Processes.cleanup!
      end
      after = Provenance.kino_fingerprint(@options.kino_root)
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
      text, markdown = Report.render(@runner, @options, @header, @started_at,
                                     interrupted: @interrupted, title: @title, extra: extra)
      puts text
      json = { options: @options.to_h, machine: @machine, command: @command_line,
               ratios: Report.ratio_summary(@runner.cells, @options), cells: @runner.cells.map(&:to_h),
               skipped: @runner.skipped, alerts: @runner.alerts }.merge(extra_json)
      Report.write(@options.output, markdown, json)
      puts "", "Written: #{@options.output.delete_prefix("#{ROOT}/")} (and .json; server logs in " \
               "#{@logs_dir.delete_prefix("#{ROOT}/")}/)"
      self
    end

    # 130 when interrupted, 1 when any measurement had a problem, else 0.
    def exit_status
      return 130 if @interrupted

      @runner.alerts.empty? ? 0 : 1
    end

    # For a script that judges its figures against a target: reports with
    # the verdict's text (a Hash with :text, :markdown and :pass) and
    # returns the exit status: #exit_status when that is not 0, else 0 when
    # the target is met and 3 when it is missed.
    def conclude(verdict, extra_json)
      report(extra: [verdict[:text], verdict[:markdown]], extra_json: extra_json)
      status = exit_status
      return status unless status.zero?

      verdict[:pass] ? 0 : 3
    end
  end
end
