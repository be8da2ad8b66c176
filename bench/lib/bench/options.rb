# frozen_string_literal: true

module Bench
  # The settings of one measuring session (bench/compare.rb's flags, or
  # bench/modes.rb's own), whichever script built them.
  Options = Struct.new(:rounds, :duration, :warmup, :connections, :wrk_threads, :endpoints,
                       :targets, :workers, :threads, :ratios, :yjit, :output, :pause, :wait_idle, :boot_timeout,
                       :stop_timeout, :check_app, :kino_root, :tls, :workload, keyword_init: true) do
    def self.parse_ratio(spec)
      parts = spec.to_s.split(":").map(&:strip)
      raise OptionParser::InvalidArgument, "#{spec.inspect}: expected A:B (two target names)" unless
        parts.size == 2 && parts.none?(&:empty?)

      parts
    end

    # The app measured (a Bench::Workload); bench/bench_app.ru unless set.
    def workload
      self[:workload] ||= Workload.bench_app
    end

    # Checks that do not depend on how the options were given.
    def validate!
      unknown = endpoints - workload.endpoints.keys
      raise OptionParser::InvalidArgument, "unknown endpoint(s): #{unknown.join(', ')}" unless unknown.empty?

      targets.each { |t| Target.build(t, self) } # validates the names
      ratios.each do |a, b|
        missing = [a, b] - targets
        raise OptionParser::InvalidArgument, "--ratio #{a}:#{b}: #{missing.join(', ')} not among --targets" unless
          missing.empty?
        raise OptionParser::InvalidArgument, "--ratio #{a}:#{b}: a target against itself" if a == b
      end
      unless File.file?(File.join(kino_root, "exe", "kino")) && File.file?(File.join(kino_root, "Gemfile"))
        raise OptionParser::InvalidArgument, "--kino-root #{kino_root} has no exe/kino and Gemfile"
      end
      raise OptionParser::InvalidArgument, "rounds, duration, connections, workers, threads must be positive" unless
        [rounds, duration, connections, wrk_threads, workers, threads || 1].all?(&:positive?)

      self
    end

    # [numerator, denominator] pairs to show as ratio columns: every target
    # against puma when puma runs (the original "vs puma" column), then those
    # asked for with --ratio, without repeats.
    # "https" when the servers serve TLS (tls: a Bench::TlsFiles), else "http".
    def url_scheme
      tls ? "https" : "http"
    end

    def ratio_pairs
      default = targets.include?("puma") ? (targets - ["puma"]).map { |t| [t, "puma"] } : []
      (default + ratios).uniq
    end
  end
end
