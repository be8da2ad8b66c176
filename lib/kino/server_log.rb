# frozen_string_literal: true

require_relative "errors"

module Kino
  # Where code running in workers writes to a server's log: the native log
  # channel, which never blocks, works from any ractor, and ends up in the
  # log the server was given (stderr for the CLI).
  module ServerLog
    module_function

    def write(server_id, text)
      Native.server_log(server_id, text)
    rescue Kino::Error
      $stderr.write(text) # the server is gone; say it somewhere
    end
  end
end
