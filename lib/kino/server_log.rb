# frozen_string_literal: true

require_relative "errors"

module Kino
  # A server's log: what Kino says about itself. Every line says which
  # process and which part of it spoke, `kino[4242] main: ...` (boot,
  # signals, the supervisor) or `kino[4242] worker-3: ...` (a worker;
  # `worker-3/thread-2` where a worker runs several threads), and on a
  # terminal the label is tinted.
  #
  # Code in workers writes through the native log channel (#write), which
  # never blocks and works from any ractor; the main process writes to an
  # Output over the IO the server was given (stderr for the CLI).
  module ServerLog
    MAIN = "main"
    UNLABELLED = "kino: "

    module_function

    # +text+ as a line spoken by +speaker+ (a newline is added if missing).
    # Lines of the native side are labelled the same way, in
    # Server::log_line.
    def line(speaker, text)
      text = "#{text}\n" unless text.end_with?("\n")
      "kino[#{Process.pid}] #{speaker}: #{text.delete_prefix(UNLABELLED)}"
    end

    # What worker +index+ calls itself, and its thread +thread_index+ when
    # it runs several.
    def speaker(index, thread_index = nil)
      thread_index ? "worker-#{index}/thread-#{thread_index}" : "worker-#{index}"
    end

    # From any ractor: +text+ (whole lines) into the server's log.
    def write(server_id, text)
      Native.server_log(server_id, text)
    rescue Kino::Error
      $stderr.write(text) # the server is gone; say it somewhere
    end

    # The main process's side of the log, over the IO a server was given.
    # A line written as "kino: ..." is said by main. While a server with
    # the IO's descriptor runs, lines go through its native writer, in
    # order with the workers' lines and tinted on a terminal; before and
    # after, and for an IO without a descriptor, to the IO.
    class Output
      attr_reader :io

      def self.over(io)
        io.is_a?(Output) ? io : new(io)
      end

      def initialize(io)
        @io = io
        @server_id = nil
      end

      # The IO's file descriptor, or nil (a StringIO, a closed IO).
      def descriptor
        @io.respond_to?(:fileno) ? @io.fileno : nil
      rescue IOError, NotImplementedError
        nil
      end

      def route_to(server_id)
        @server_id = server_id
      end

      def write(text)
        return @io.write(text.start_with?(UNLABELLED) ? ServerLog.line(MAIN, text) : text) unless @server_id

        Native.server_log(@server_id, text)
      rescue Kino::Error
        @server_id = nil
        retry
      end

      def puts(text)
        write(text.end_with?("\n") ? text : "#{text}\n")
      end
    end
  end
end
