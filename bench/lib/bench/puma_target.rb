# frozen_string_literal: true

module Bench
  # Puma in cluster mode: a master and forked workers, --workers of them
  # (`puma`), or N (`puma-pN`, to stand beside `kino-MODE-pN`).
  class PumaTarget < Target
    # Threads per worker when --threads is not given: Puma's own default.
    DEFAULT_THREADS = 3

    def default_threads
      DEFAULT_THREADS
    end

    def forks
      processes || @options.workers
    end

    def topology
      processes ? "#{processes} procs x #{threads}" : super
    end

    def describe
      "Puma #{@options.workload.puma_version} cluster, #{forks} forked workers x #{threads_text}"
    end

    def command(port)
      [*ruby_command, @options.workload.puma_bin,
       "-b", @options.tls ? @options.tls.puma_bind(port) : "tcp://#{HOST}:#{port}", "-w", forks.to_s,
       "-t", "#{threads}:#{threads}", "-e", "production", @options.workload.rackup]
    end

    # Puma's master re-raises SIGTERM after a graceful stop, so it exits
    # "killed by TERM" (143 in a shell); that is its normal, clean exit.
    def clean_exit?(status)
      status.success? || status.termsig == Signal.list["TERM"]
    end
  end
end
