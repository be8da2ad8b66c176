# frozen_string_literal: true

module Bench
  # What each endpoint of bench/bench_app.ru must answer. All of them are
  # expected to be 200, so any non-2xx/3xx answer during a measurement is an
  # error.
  ENDPOINTS = {
    "plaintext" => { path: "/plaintext", body: ->(b) { b == "Hello, World!" } },
    "cpu" => { path: "/cpu", body: ->(b) { b == "6765" } },
    "io" => { path: "/io", body: ->(b) { b == "slept" } },
    "io_native" => { path: "/io_native", body: ->(b) { b.start_with?("slept (") } },
    "10k" => { path: "/10k", body: ->(b) { b.bytesize == 10_000 } },
    "1k" => { path: "/1k", body: ->(b) { b.bytesize == 1_000 } },
    "4k" => { path: "/4k", body: ->(b) { b.bytesize == 4_096 } },
    "64k" => { path: "/64k", body: ->(b) { b.bytesize == 65_536 } }
  }.freeze

  # Measured unless --endpoints says otherwise: the body-size endpoints
  # (1k, 4k, 64k) are for the lending threshold study in
  # doc/benchmarks.md, and only run when named.
  DEFAULT_ENDPOINTS = (ENDPOINTS.keys - %w[1k 4k 64k]).freeze
end
