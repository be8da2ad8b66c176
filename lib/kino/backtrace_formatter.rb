# frozen_string_literal: true

module Kino
  # How Kino logs an exception: a headline, then its backtrace, indented,
  # with the app's own frames first and the rest folded into one
  # "… N more" line. The app's frames are those under the working
  # directory that are not gems, Ruby's own library or Kino: shown
  # relative to it, they are the lines a reader looks for. Used by workers
  # (from any ractor) and the supervisor, so it holds nothing but
  # shareable constants, and reads the working directory per call.
  #
  # Frames are matched as text (`path:line` and what follows), which holds
  # for every Ruby: 3.1 writes "in `name'", 3.4 and later "in 'Class#name'".
  module BacktraceFormatter
    # Shown when no frame is the app's (an error inside a gem, or Kino).
    BACKTRACE_LINES = 30
    FRAME = /\A(?<path>.+?):(?<line>\d+)(?::|\z)/
    KINO_LIB = File.expand_path("..", __dir__).freeze
    NOT_THE_APP = %r{/(?:gems|bundler|rubygems|vendor/bundle)/|\A<internal:}

    module_function

    # +headline+ with its newline, and the backtrace of +error+ under it.
    def format(headline, error)
      lines = ["#{headline}\n"]
      frames(error.backtrace || []).each { |frame| lines << "    #{frame}\n" }
      lines.join
    end

    # A failed request in one line: "500 GET /path · Class: message (file:line)",
    # the place being the app's frame nearest the raise. +status+ is what
    # leads the line ("500").
    def request_headline(status, method, path, error)
      place = location(error.backtrace || [])
      message = error.message.to_s.lines.first.to_s.chomp
      "#{status} #{method} #{path} · #{error.class}: #{message}#{" (#{place})" if place}"
    end

    def frames(backtrace)
      root = "#{Dir.pwd}/"
      app = backtrace.select { |frame| app_frame?(frame, root) }
      shown = app.empty? ? backtrace.first(BACKTRACE_LINES) : app.map { |frame| frame.delete_prefix(root) }
      folded = backtrace.size - shown.size
      folded.positive? ? shown + ["… #{folded} more"] : shown
    end

    def location(backtrace)
      root = "#{Dir.pwd}/"
      frame = backtrace.find { |f| app_frame?(f, root) } || backtrace.first
      match = frame && FRAME.match(frame)
      match && "#{match[:path].delete_prefix(root)}:#{match[:line]}"
    end

    def app_frame?(frame, root)
      path = FRAME.match(frame)&.[](:path)
      return false unless path&.start_with?(root)

      !path.start_with?(KINO_LIB) && !NOT_THE_APP.match?(path)
    end
  end
end
