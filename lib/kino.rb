# frozen_string_literal: true

require_relative "kino/version"
require_relative "kino/errors"
require_relative "kino/configuration"
require_relative "kino/native"
require_relative "kino/worker"
require_relative "kino/thread_pool"
require_relative "kino/server"

# Kino: a Rack server whose HTTP machinery is native (C++), feeding worker
# Ractors or threads through a lock-free queue. See README.md.
module Kino
  # Sleeps `seconds` on the OS clock with the GVL released (in a worker
  # ractor: only that ractor's lock), in short chunks so Thread#kill and
  # shutdown interrupt it promptly. Unlike Kernel#sleep it wakes on time
  # inside non-main ractors too.
  def self.sleep(seconds)
    Native.sleep(seconds)
  end
end
