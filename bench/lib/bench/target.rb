# frozen_string_literal: true

module Bench
  # A server to measure: how to start it, and what counts as a clean exit.
  # KinoTarget and PumaTarget are the two kinds.
  class Target
    attr_reader :name

    def self.build(name, options)
      case name
      when "puma" then PumaTarget.new(name, options)
      when /\Akino-([a-z]+)(?:\+(log|json|copy|lendall))?\z/
        variant = Regexp.last_match(2)
        KinoTarget.new(name, options, Regexp.last_match(1), access_log: KinoTarget::ACCESS_LOGS[variant],
                                                            lend_min: KinoTarget::LEND_MIN[variant])
      else
        raise OptionParser::InvalidArgument,
              "unknown target #{name} (expected puma, kino-MODE, or kino-MODE+VARIANT: log, json, copy, lendall)"
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
      [*MeasuredRuby.command(yjit: @options.yjit), "-rbundler/setup"]
    end

    def clean_exit?(status)
      status.success?
    end

    def gemfile
      File.join(ROOT, "Gemfile")
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
