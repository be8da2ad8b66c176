# frozen_string_literal: true

module Kino
  # How Kino logs an exception: a headline, then the first BACKTRACE_LINES
  # lines of its backtrace, indented. Used by workers (from any ractor) and
  # the supervisor, so it holds nothing but shareable constants.
  module BacktraceFormatter
    BACKTRACE_LINES = 30

    module_function

    # +headline+ with its newline, and the backtrace of +error+ under it.
    def format(headline, error)
      lines = ["#{headline}\n"]
      (error.backtrace || []).first(BACKTRACE_LINES).each { |line| lines << "    #{line}\n" }
      lines.join
    end
  end
end
