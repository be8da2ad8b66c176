# frozen_string_literal: true

require_relative "errors"

module Kino
  # An app answered in a way the Rack contract does not allow.
  class InvalidResponse < Error; end
end
