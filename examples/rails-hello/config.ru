# frozen_string_literal: true

# `bundle exec kino` (from this directory) loads this file, as rackup and
# `bin/rails server` do.
require_relative "config/environment"

run Rails.application
Rails.application.load_server
