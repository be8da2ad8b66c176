# frozen_string_literal: true

# sig/: the signatures of Kino's public API (sig/kino.rbs), checked by the
# rbs gem the Gemfile pins (the release Ruby 4.0 bundles, which also
# installs on Ruby 3.1). spec/signatures_spec.rb checks that they cover the
# public methods.
#
#   rake rbs:validate   # every type sig/ names exists and is well formed

require "rbconfig"

namespace :rbs do
  desc "Check sig/ with `rbs validate` (types resolve, signatures well formed)"
  task :validate do
    # The bundle's rbs, run by this Ruby. Not through a nested `bundle
    # exec`: under `bundle exec rake` on Ruby 4.0 (with Gemfile.lock's
    # Bundler 2.3.15) that took rbs's -r for Bundler's own --retry.
    # Kino::Logger is a ::Logger: -r logger loads the logger library's
    # signatures.
    sh RbConfig.ruby, Gem.bin_path("rbs", "rbs"), "-r", "logger", "-I", "sig", "validate"
  end
end
