# frozen_string_literal: true

module Bench
  # Puma in cluster mode: a master and forked workers, --workers of them
  # (`puma`), or N (`puma-pN`, to stand beside `kino-MODE-pN`). With
  # +ractors (puma+ractors) it serves bench/ractor_pool_app.ru instead: the
  # same app behind a Rack middleware that hands each request to a pool of
  # ractors in each worker and waits for the answer (bench/studies.rb
  # ractor_pool), the pools together as many ractors as there are cores.
  class PumaTarget < Target
    # Threads per worker when --threads is not given: Puma's own default.
    DEFAULT_THREADS = 3
    RACTOR_POOL_APP = File.join(ROOT, "bench", "ractor_pool_app.ru")

    def initialize(name, options, processes: nil, shape: nil, ractor_pool: false)
      super(name, options, processes: processes, shape: shape)
      @ractor_pool = ractor_pool
    end

    def default_threads
      DEFAULT_THREADS
    end

    def forks
      processes || workers
    end

    def topology
      processes ? "#{processes} procs x #{threads}" : super
    end

    # Ractors in each worker's pool: the cores shared among the forks.
    def ractors_per_fork
      (Etc.nprocessors.to_f / forks).ceil
    end

    def env
      @ractor_pool ? { "KINO_BENCH_RACTORS" => ractors_per_fork.to_s } : {}
    end

    def describe
      pool = @ractor_pool ? ", each handing requests to a pool of #{ractors_per_fork} ractors (#{rackup_name})" : ""
      "Puma #{@options.workload.puma_version} cluster, #{forks} forked workers x #{threads_text}#{pool}"
    end

    def command(port)
      [*ruby_command, @options.workload.puma_bin,
       "-b", @options.tls ? @options.tls.puma_bind(port) : "tcp://#{HOST}:#{port}", "-w", forks.to_s,
       "-t", "#{threads}:#{threads}", "-e", "production", rackup]
    end

    # Puma's master re-raises SIGTERM after a graceful stop, so it exits
    # "killed by TERM" (143 in a shell); that is its normal, clean exit.
    def clean_exit?(status)
      status.success? || status.termsig == Signal.list["TERM"]
    end

    private

    def rackup
      @ractor_pool ? RACTOR_POOL_APP : @options.workload.rackup
    end

    def rackup_name
      rackup.delete_prefix("#{ROOT}/")
    end
  end
end
