# frozen_string_literal: true

# Loads the compiled extension, turning a missing build into advice.
begin
  require "kino/kino"
rescue LoadError => e
  raise LoadError, <<~MSG.chomp
    kino: the native extension could not be loaded (#{e.message}).
    From a checkout, run `bin/setup` (installs the C++ libraries and compiles)
    or `bundle exec rake compile`; as a gem, reinstall it so it compiles again.
  MSG
end

# What Kino defines beside the extension it calls (see lib/kino.rb).
module Kino
  # Sleeps `seconds` on the OS clock with the GVL released (in a worker
  # ractor: only that ractor's lock), in short chunks so Thread#kill and
  # shutdown interrupt it promptly: in a request handler, when the server's
  # graceful stop gives up waiting (shutdown_timeout), it raises Kino::Error
  # so the handler ends. Unlike Kernel#sleep it wakes on time inside
  # non-main ractors too.
  def self.sleep(seconds)
    Native.sleep(seconds, Thread.current[:kino_server_id])
  end
end

# Log writers stop around every fork of this process.
require_relative "fork_hook"

# Methods of Kino::Input, the class native_input.cpp hands out as rack.input.
require_relative "input"
