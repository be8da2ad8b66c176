# frozen_string_literal: true

require_relative "server_log"

module Kino
  # rack.errors: one stream a worker, frozen and shareable (the server's
  # id and the worker's name), whose lines go through the server's log
  # channel like every other line of that worker: `kino[4242] worker-3:
  # ...`. Writing never blocks and works in any ractor.
  #
  # It keeps nothing between calls (a frozen object cannot), so each
  # write, print or puts argument is a line of its own.
  class ErrorStream
    def initialize(server_id, speaker)
      @server_id = server_id
      @speaker = speaker.dup.freeze
      freeze
    end

    def write(*strings)
      text = strings.join
      ServerLog.write(@server_id, ServerLog.line(@speaker, text)) unless text.empty?
      text.bytesize
    end

    def print(*strings)
      write(*strings)
      nil
    end

    def puts(*lines)
      lines = [""] if lines.empty?
      lines.flatten.each { |line| write(line.to_s.end_with?("\n") ? line.to_s : "#{line}\n") }
      nil
    end

    def <<(string)
      write(string)
      self
    end

    # Lines are queued whole at once: nothing to flush.
    def flush
      self
    end
  end
end
