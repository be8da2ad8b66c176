# frozen_string_literal: true

module Bench
  # A server to measure: how to start it, and what counts as a clean exit.
  # KinoTarget, PumaTarget and NginxTarget are the kinds. A name ending in
  # -pN (kino-threaded-p2, puma-p2) forks N server processes from one
  # parent: Kino's `processes N`, each with --workers workers; Puma's
  # `-w N`. A name ending in @WxT (kino-ractor@4x1, puma@2x12) runs W
  # workers x T threads whatever --workers and --threads say, so one
  # session can hold several shapes of one server (bench/studies.rb).
  class Target
    SHAPE = /@(\d+)x(\d+)\z/

    attr_reader :name, :processes

    def self.build(name, options)
      base = name.sub(SHAPE, "")
      shape = shape(name)
      case base
      when "nginx"
        NginxTarget.new(name, options, shape: shape)
      when /\Apuma(?:-p(\d+))?(\+ractors)?\z/
        PumaTarget.new(name, options, processes: process_count(name, Regexp.last_match(1)), shape: shape,
                                      ractor_pool: !Regexp.last_match(2).nil?)
      when /\Akino-([a-z]+)(?:-p(\d+))?((?:\+[a-z0-9]+)*)\z/
        mode, count, modifiers = Regexp.last_match.captures
        KinoTarget.new(name, options, mode, processes: process_count(name, count), shape: shape,
                                            **KinoTarget.modifiers(name, modifiers))
      else
        raise OptionParser::InvalidArgument,
              "unknown target #{name} (expected nginx, puma, puma-pN, puma+ractors, kino-MODE or kino-MODE-pN, " \
              "each Kino one with +MODIFIER if wanted: #{KinoTarget::MODIFIERS}; any of them with @WxT)"
      end
    end

    # [workers, threads] from a name ending in @WxT, else nil.
    def self.shape(name)
      m = name.match(SHAPE)
      return nil unless m

      shape = m.captures.map { |digits| Integer(digits, 10) }
      raise OptionParser::InvalidArgument, "#{name}: @WxT needs W and T of 1 or more" unless shape.all?(&:positive?)

      shape
    end

    # nil for one process (no -pN), else N, which must be 2 or more.
    def self.process_count(name, digits)
      return nil unless digits

      count = Integer(digits, 10)
      raise OptionParser::InvalidArgument, "#{name}: -pN forks N processes, N must be 2 or more" if count < 2

      count
    end

    def initialize(name, options, processes: nil, shape: nil)
      @name = name
      @options = options
      @processes = processes
      @shape = shape
    end

    def kino?
      false
    end

    # Workers for this target: its @WxT when named so, else --workers.
    def workers
      @shape ? @shape.first : @options.workers
    end

    # Threads per worker for this target: its @WxT when named so, else
    # --threads when given, else the server's own default for this mode.
    def threads
      @shape ? @shape.last : @options.threads || default_threads
    end

    def topology
      "#{workers} x #{threads}"
    end

    # Whether the target answers this endpoint of the workload; the runner
    # skips (and says so) those it does not (NginxTarget).
    def serves?(_endpoint)
      true
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
