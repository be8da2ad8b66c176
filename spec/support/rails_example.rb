# frozen_string_literal: true

require "rbconfig"
require_relative "server_helper"

# examples/rails-hello as its own processes: its own bundle (Rails 7.2,
# installed by bin/setup), none of the suite's Bundler settings, and
# production mode with a throwaway secret.
module RailsExample
  DIR = File.join(ServerHelper::ROOT, "examples/rails-hello")
  GEMFILE = File.join(DIR, "Gemfile")
  # A production Rails boot with eager loading takes seconds on a busy
  # two-core machine; more than the suite's BOOT_TIMEOUT.
  BOOT_TIMEOUT = 90
  # The boot line of a group, which config/kino.rb forks when
  # WEB_CONCURRENCY is above 1: how many processes, and the children's pids.
  GROUP_LINE = /^\* Processes: (\d+) processes x 1 workers x 3 threads \(mode threaded\), .*; pids ([\d, ]+)$/

  # The environment the example runs in: the one this process had before
  # Bundler changed it, with the example's Gemfile. Pass it with
  # `unsetenv_others: true`, so nothing of the suite's bundle leaks in.
  def self.env(extra = {})
    base = defined?(Bundler) ? Bundler.unbundled_env : ENV.to_h
    # config/kino.rb forks WEB_CONCURRENCY processes: only a spec that asks gets more than one.
    base.except("WEB_CONCURRENCY")
        .merge("BUNDLE_GEMFILE" => GEMFILE, "RAILS_ENV" => "production", "RACK_ENV" => "production",
               "SECRET_KEY_BASE" => "kino-spec-not-a-secret").merge(extra)
  end

  # Whether the example's bundle is installed; the message says how to fix it.
  def self.check_bundle!
    ok = system(env, "bundle", "check", chdir: DIR, out: File::NULL, err: File::NULL, unsetenv_others: true)
    raise "examples/rails-hello's bundle is not installed: run bin/setup" unless ok
  end

  def self.spawn_options
    { unsetenv_others: true }
  end
end
