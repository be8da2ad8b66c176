# frozen_string_literal: true

module Bench
  module Studies
    # What logging a line a request costs: Kino's access log, and an app
    # writing one line with ::Logger or with Kino::Logger, each to a file,
    # on bench/logging_app.ru (:threaded: its ::Logger is not shareable).
    LOG_DIR = File.join(RESULTS_DIR, "logging")

    LOGGING = Study.new(
      name: "logging",
      question: "what does one log line a request cost, by the way it is written?",
      targets: %w[kino-threaded kino-threaded+log],
      endpoints: %w[none shared kino],
      ratios: [%w[kino-threaded+log kino-threaded]],
      workload: lambda {
        FileUtils.mkdir_p(LOG_DIR)
        Workload.logging_app(LOG_DIR)
      },
      conditions: [["no logging", "kino-threaded", "none"], ["log_requests", "kino-threaded+log", "none"],
                   ["::Logger to a file", "kino-threaded", "shared"],
                   ["Kino::Logger to a file", "kino-threaded", "kino"]]
    )
  end
end
