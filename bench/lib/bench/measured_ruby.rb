# frozen_string_literal: true

module Bench
  # How a measured Ruby process (a server, or allocations.rb's child) is
  # started: with the Ruby running the harness, YJIT only when asked for,
  # and the Gemfile of the Kino checkout (or Puma) it should load.
  module MeasuredRuby
    def self.command(yjit:)
      [RbConfig.ruby, *(yjit ? ["--yjit"] : [])]
    end

    # Only the harness decides about YJIT: RUBYOPT's --yjit flags and
    # RUBY_YJIT_ENABLE are dropped.
    def self.env(gemfile)
      rubyopt = ENV["RUBYOPT"].to_s.split.reject { |flag| flag.start_with?("--yjit") }
      { "RACK_ENV" => "production", "BUNDLE_GEMFILE" => gemfile, "RUBY_YJIT_ENABLE" => nil,
        "RUBYOPT" => rubyopt.empty? ? nil : rubyopt.join(" ") }
    end
  end
end
