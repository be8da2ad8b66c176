# frozen_string_literal: true

require "rackup/handler"
require "kino/rack_handler"

module Rackup
  # Rackup's registry of servers (defined by rackup/handler).
  module Handler
    # `rackup -s kino` and `rails server -u kino` (rackup >= 2, Rack 3):
    # Rackup::Handler.get(:kino) requires this file and takes what it
    # registers. Everything is in Kino::RackHandler.
    module Kino
      extend ::Kino::RackHandler
    end

    register :kino, Kino
  end
end
