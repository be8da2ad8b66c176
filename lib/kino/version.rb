# frozen_string_literal: true

module Kino
  VERSION = "0.1.0"
end
