# frozen_string_literal: true

# How a line Kino writes about itself begins (Kino::ServerLog): which
# process, and which part of it, spoke.
module LogLines
  # "kino[<pid>] main: ", for an in-process server unless +pid+ is given.
  def said_by(speaker = "main", pid: Process.pid)
    "kino[#{pid}] #{speaker}: "
  end

  # The same as a pattern, where the worker's index may be any.
  def said_by_worker(pid: Process.pid)
    %r{kino\[#{pid}\] worker-\d+(?:/thread-\d+)?: }
  end
end

RSpec.configure do |config|
  config.include LogLines
end
