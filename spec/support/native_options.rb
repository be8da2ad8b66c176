# frozen_string_literal: true

# Kino::Native.server_create takes every option and keeps no defaults of its
# own. Specs that call it directly start from the Hash Kino::Server passes
# for a default configuration, and change only what they are about.
module NativeOptions
  def self.with(**changes)
    require "kino"
    Kino::Server.new(->(_env) { [200, {}, []] }).send(:native_options).merge(changes)
  end
end
