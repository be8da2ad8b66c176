# frozen_string_literal: true

require_relative "kino/version"
require_relative "kino/errors"
require_relative "kino/available_parallelism"
require_relative "kino/configuration"
require_relative "kino/native"
require_relative "kino/request_loop"
require_relative "kino/thread_spawner"
require_relative "kino/pidfile"
require_relative "kino/server"
require_relative "kino/systemd_notifier"
require_relative "kino/logger"

# Kino: a Rack server whose HTTP machinery is native (C++), feeding worker
# Ractors or threads through a lock-free queue. See README.md. Kino.sleep is
# defined with the extension, in kino/native.rb.
module Kino
end
