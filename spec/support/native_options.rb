# frozen_string_literal: true

# Kino::Native.server_create takes every option and keeps no defaults of its
# own. Specs that call it directly start from the Hash Kino::Server passes
# for a default configuration, and change only what they are about.
module NativeOptions
  def self.with(**changes)
    require "kino"
    require "stringio"
    # A log without a descriptor: the server's lines wait for
    # server_drain_log, as the specs that call it expect.
    Kino::Server.new(->(_env) { [200, {}, []] }, log: StringIO.new).send(:native_options).merge(changes)
  end
end
