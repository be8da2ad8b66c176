# frozen_string_literal: true

require "logger"
require_relative "errors"
require_relative "native"

module Kino
  # A ::Logger (levels, progname, formatter, <<) whose lines go to a
  # native writer thread: logging copies the line into a bounded lock-free
  # channel and returns, without a mutex or a write syscall in the request
  # thread. When the channel is full (8192 lines by default) a line is
  # dropped and counted (#dropped), never waited for.
  #
  #   LOG = Ractor.make_shareable(Kino::Logger.new("log/app.log"))
  #
  # Made shareable, one logger logs from every worker ractor: its Device
  # holds only an Integer naming the native writer. Kino::Logger.new writes
  # to stdout, .new(path) appends to a file (reopened on SIGHUP, after
  # logrotate renamed it), .new(io) to that IO's file descriptor.
  class Logger < ::Logger
    # What ::Logger calls a log device (write, reopen, close), frozen and
    # shareable. Every device lives until the process exits, when its
    # lines are written out: a device shared by many ractors cannot know
    # when the last of them is done with it, so #close only flushes.
    class Device
      CAPACITY = 8192
      FLUSH_TIMEOUT = 10.0

      # The file it appends to, or nil for an IO.
      attr_reader :path

      def initialize(target = $stdout, capacity: CAPACITY)
        @path = nil
        @id = if target.is_a?(String) || (defined?(Pathname) && target.is_a?(Pathname))
                @path = target.to_s.dup.freeze
                Native.logger_open(@path, capacity)
              else
                Native.logger_open(descriptor_of(target), capacity)
              end
        freeze
      end

      # Queues +message+ (a whole line, with its newline) and returns at
      # once; false when it was dropped because the channel is full.
      def write(message)
        Native.logger_write(@id, message.to_s)
      end

      # Lines lost: dropped at a full channel, or not writable (a closed
      # pipe, a full disk).
      def dropped
        Native.logger_dropped(@id)
      end

      def tty?
        Native.logger_tty?(@id)
      end

      # Waits (at most +timeout+ seconds) until every line written before
      # is in the file; whether it is.
      def flush(timeout = FLUSH_TIMEOUT)
        Native.logger_flush(@id, timeout)
      end

      # ::Logger#reopen: a file is opened again by its path (a moved file
      # is let go); an IO stays as it is.
      def reopen(_log = nil, **)
        Native.logger_reopen(@id)
        self
      end

      def close
        flush
        nil
      end

      private

      def descriptor_of(io)
        fd = io.respond_to?(:fileno) ? io.fileno : nil
        unless fd
          raise ArgumentError,
                "Kino::Logger writes to a path or to an IO with a file descriptor, not #{io.class}"
        end

        # What the IO buffered goes before the device's lines.
        io.flush if io.respond_to?(:flush)
        fd
      end
    end

    LEVELS = { "debug" => DEBUG, "info" => INFO, "warn" => WARN, "error" => ERROR, "fatal" => FATAL,
               "unknown" => UNKNOWN }.freeze
    LEVEL_OVERRIDES = :kino_logger_levels

    def initialize(target = $stdout, level: DEBUG, progname: nil, formatter: nil, datetime_format: nil,
                   capacity: Device::CAPACITY)
      super(nil, level: level, progname: progname, formatter: formatter, datetime_format: datetime_format)
      @logdev = Device.new(target, capacity: capacity)
    end

    def device
      @logdev
    end

    def dropped
      @logdev.dropped
    end

    def flush(timeout = Device::FLUSH_TIMEOUT)
      @logdev.flush(timeout)
    end

    # ::Logger 1.6 keeps with_level's overrides in a Hash of the logger's
    # own, frozen once the logger is shareable. Here they are fiber-local
    # (Thread#[]), which any ractor may change.
    def level
      overrides = Thread.current[LEVEL_OVERRIDES]
      (overrides && overrides[self]) || @level
    end

    def with_level(severity)
      overrides = (Thread.current[LEVEL_OVERRIDES] ||= {}.compare_by_identity)
      previous = overrides[self]
      overrides[self] = level_number(severity)
      begin
        yield
      ensure
        previous ? overrides[self] = previous : overrides.delete(self)
      end
    end

    private

    def level_number(severity)
      return severity if severity.is_a?(Integer)

      LEVELS.fetch(severity.to_s.downcase) { raise ArgumentError, "invalid log level: #{severity}" }
    end
  end
end
