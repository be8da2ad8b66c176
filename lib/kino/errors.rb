# frozen_string_literal: true

module Kino
  # The root of every error Kino raises on purpose, so that callers (the CLI,
  # an embedding application) can tell Kino's own reports from bugs.
  class Error < StandardError; end

  # The configuration cannot be used: a bad value for a directive, an
  # unknown directive, a config file that is missing or does not parse.
  # The message is meant for the operator as it stands: it starts with
  # "<file>:<line>: " when the problem is in a config file, and the CLI
  # prints it without a backtrace.
  class ConfigError < Error; end

  # The application cannot run in :ractor mode (it holds state that cannot
  # be shared between ractors), and :ractor mode was asked for explicitly.
  class UnshareableAppError < Error; end

  # Raised by a rack.input read when the request body will not arrive
  # whole: the client went away, stalled past first_data_timeout, or sent
  # more than max_body_size. The client has been answered (or is gone);
  # the message ends with that status, e.g. "request body stalled (408)".
  # An EOFError, like the errors other servers raise for a cut-off body.
  class InputError < EOFError; end

  # A worker ractor died of an exception whose class cannot be rebuilt on
  # the main ractor from its message alone; `error_class` names it.
  class WorkerCrash < Error
    attr_reader :error_class

    def initialize(error_class, message)
      @error_class = error_class
      super("#{error_class}: #{message}")
    end
  end
end
