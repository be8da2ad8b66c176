# frozen_string_literal: true

# sig/: the signatures of Kino's public API (sig/kino.rbs), checked by the
# rbs gem the Gemfile pins (the release Ruby 4.0 bundles, which also
# installs on Ruby 3.1). spec/signatures_spec.rb checks that they cover the
# public methods.
#
#   rake rbs:validate   # every type sig/ names exists and is well formed

namespace :rbs do
  desc "Check sig/ with `rbs validate` (types resolve, signatures well formed)"
  task :validate do
    # Kino::Logger is a ::Logger: its signatures are the logger library's.
    sh "bundle", "exec", "rbs", "-r", "logger", "-I", "sig", "validate"
  end
end
