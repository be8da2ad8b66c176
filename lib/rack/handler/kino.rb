# frozen_string_literal: true

require "kino/rack_handler"

# Rack 2's registry (Rack::Handler.get("kino") requires this file), or
# rackup 1's copy of it on Rack 3. Rack 3 alone has no Rack::Handler; there
# Rackup::Handler::Kino (lib/rackup/handler/kino.rb) is the one to use, and
# this file defines nothing rather than invent a Rack::Handler.
if defined?(Rack::Handler)
  module Rack
    # Rack 2's registry of servers (defined by rack/handler).
    module Handler
      # Everything is in Kino::RackHandler.
      module Kino
        extend ::Kino::RackHandler
      end

      register "kino", Kino if respond_to?(:register)
    end
  end
end
