# frozen_string_literal: true

module Bench
  # A server to measure: how to start it, and what counts as a clean exit.
  # KinoTarget and PumaTarget are the two kinds. A name ending in -pN
  # (kino-threaded-p2, puma-p2) forks N server processes from one parent:
  # Kino's `processes N`, each with --workers workers; Puma's `-w N`.
  class Target
    attr_reader :name, :processes

    def self.build(name, options)
      case name
      when /\Apuma(?:-p(\d+))?\z/
        PumaTarget.new(name, options, processes: process_count(name, Regexp.last_match(1)))
      when /\Akino-([a-z]+)(?:-p(\d+))?(?:\+(log|json|copy|lendall))?\z/
        mode, count, variant = Regexp.last_match.captures
        KinoTarget.new(name, options, mode, access_log: KinoTarget::ACCESS_LOGS[variant],
                                            processes: process_count(name, count),
                                            lend_min: KinoTarget::LEND_MIN[variant])
      else
        raise OptionParser::InvalidArgument,
              "unknown target #{name} (expected puma, puma-pN, kino-MODE or kino-MODE-pN, each Kino one " \
              "with +VARIANT if wanted: log, json, copy, lendall)"
      end
    end

    # nil for one process (no -pN), else N, which must be 2 or more.
    def self.process_count(name, digits)
      return nil unless digits

      count = Integer(digits, 10)
      raise OptionParser::InvalidArgument, "#{name}: -pN forks N processes, N must be 2 or more" if count < 2

      count
    end

    def initialize(name, options, processes: nil)
      @name = name
      @options = options
      @processes = processes
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
      [*MeasuredRuby.command(yjit: @options.yjit), "-rbundler/setup"]
    end

    def clean_exit?(status)
      status.success?
    end

    # The workload's bundle when it has one, else the harness's.
    def gemfile
      @options.workload.gemfile || File.join(ROOT, "Gemfile")
    end

    # Variables the server process gets besides MeasuredRuby's.
    def env
      {}
    end

    private

    def threads_text
      "#{threads} thread#{'s' unless threads == 1}"
    end
  end
end
