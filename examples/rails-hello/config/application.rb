# frozen_string_literal: true

require_relative "boot"

# Only Action Controller (with Action View and Active Support, which it
# needs): no database, no mailer, no jobs, no assets.
require "rails"
require "action_controller/railtie"

Bundler.require(*Rails.groups) # kino, so config/environments can name Kino::Logger

module RailsHello
  # The whole app: two actions in HelloController (config/routes.rb).
  class Application < Rails::Application
    config.load_defaults 7.2
    config.root = File.expand_path("..", __dir__)
    # Eager loading in every environment: a request then never loads code,
    # which is what the ractor probe and a multi-threaded server want.
    config.eager_load = true
  end
end
