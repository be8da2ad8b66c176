# frozen_string_literal: true

module Bench
  # Puma in cluster mode: a master and --workers forked workers.
  class PumaTarget < Target
    # Threads per worker when --threads is not given: Puma's own default.
    DEFAULT_THREADS = 3

    def default_threads
      DEFAULT_THREADS
    end

    def describe
      "Puma cluster, #{@options.workers} forked workers x #{threads_text}"
    end

    def command(port)
      [*ruby_command, Gem.bin_path("puma", "puma"),
       "-b", @options.tls ? @options.tls.puma_bind(port) : "tcp://#{HOST}:#{port}", "-w", @options.workers.to_s,
       "-t", "#{threads}:#{threads}", "-e", "production", APP_FILE]
    end

    # Puma's master re-raises SIGTERM after a graceful stop, so it exits
    # "killed by TERM" (143 in a shell); that is its normal, clean exit.
    def clean_exit?(status)
      status.success? || status.termsig == Signal.list["TERM"]
    end
  end
end
