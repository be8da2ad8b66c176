# frozen_string_literal: true

module Bench
  # One measurement: one target on one endpoint in one round.
  Cell = Struct.new(:round, :endpoint, :target, :threads, :rps, :requests, :p50_ms, :p99_ms, :socket_errors,
                    :non_2xx, :peak_rss_kb, :peak_pss_kb, :processes, :boot_seconds, :stop_seconds, :cpu,
                    :problems, :note, :log, keyword_init: true) do
    def errors?
      Wrk.errors?(to_h)
    end
  end
end
