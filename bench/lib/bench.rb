# frozen_string_literal: true

require "etc"
require "fileutils"
require "digest"
require "json"
require "net/http"
require "optparse"
require "rbconfig"
require "shellwords"
require "socket"
require "tempfile"
require "time"
require "tmpdir"

# The benchmark harness that bench/compare.rb, bench/modes.rb and
# bench/allocations.rb share: one concept a file under bench/lib/bench/.
# See bench/README.md.
module Bench
  ROOT = File.expand_path("../..", __dir__)
  APP_FILE = File.join(ROOT, "bench", "bench_app.ru")
  RESULTS_DIR = File.join(ROOT, "bench", "results")
  HOST = "127.0.0.1"

  def self.now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # How a script was invoked, for the report header.
  def self.command_line(argv)
    "#{ENV['BUNDLE_BIN_PATH'] ? 'bundle exec ruby' : 'ruby'} " \
      "#{[$PROGRAM_NAME.delete_prefix("#{ROOT}/"), *argv].shelljoin}"
  end

  # A script's entry point: exits with what the block returns, or with 2
  # and "NAME: message" when its options do not parse.
  def self.run_script(name)
    exit yield
  rescue OptionParser::ParseError => e
    warn "#{name}: #{e.message}"
    exit 2
  end
end

ENV["BUNDLE_GEMFILE"] ||= File.join(Bench::ROOT, "Gemfile")
require "bundler/setup"
require "rack"

require_relative "bench/endpoints"
require_relative "bench/workload"
require_relative "bench/options"
require_relative "bench/measured_ruby"
require_relative "bench/target"
require_relative "bench/kino_target"
require_relative "bench/puma_target"
require_relative "bench/nginx_target"
require_relative "bench/processes"
require_relative "bench/proc_fs"
require_relative "bench/memory_sampler"
require_relative "bench/cpu_window"
require_relative "bench/wrk"
require_relative "bench/tls_files"
require_relative "bench/server_run"
require_relative "bench/app_check"
require_relative "bench/cell"
require_relative "bench/runner"
require_relative "bench/stats"
require_relative "bench/figures"
require_relative "bench/tables"
require_relative "bench/provenance"
require_relative "bench/report"
require_relative "bench/session"
