# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# Deadlines, and waiting within them: every wait on a socket, a server or
# a process ends, so a server bug fails an example instead of hanging the
# suite.
module WaitHelper
  # Generous: the suite runs on small, noisy machines. A correct server
  # answers in milliseconds; these only bound how long a broken one can
  # stall an example.
  IO_TIMEOUT = 5
  BOOT_TIMEOUT = 20

  class WaitTimeout < StandardError; end

  # Polls the block until it is truthy; fails the example after +timeout+.
  def wait_until(timeout: IO_TIMEOUT, interval: 0.01, message: "condition not met")
    deadline = monotonic + timeout
    loop do
      result = yield
      return result if result
      if monotonic > deadline
        raise WaitTimeout, "after #{timeout}s: #{message.respond_to?(:call) ? message.call : message}"
      end

      sleep interval
    end
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # ---------------------------------------------------------------------
  # Signals through files, for apps in worker ractors: they share no Queue
  # with the spec, but see the same file system (HttpApps::Gate is the app
  # side).

  # A path (not yet created) in a directory of this example's own, removed
  # after the example.
  def signal_path(name)
    @signal_dir ||= Dir.mktmpdir("kino-spec")
    File.join(@signal_dir, name)
  end

  def open_gate(path)
    File.write(path, "")
  end

  # Waits until the file at +path+ exists; fails the example after +timeout+.
  def wait_for_file(path, timeout: IO_TIMEOUT, message: "#{path} never appeared")
    wait_until(timeout: timeout, message: message) { File.exist?(path) }
  end

  # The contents of a report an app or hook writes with one File.write: the
  # file exists (empty) before the write lands, so wait for its bytes.
  def wait_for_report(path, timeout: IO_TIMEOUT, message: "#{path} was never written")
    contents = nil
    wait_until(timeout: timeout, message: message) do
      contents = File.exist?(path) ? File.read(path) : ""
      !contents.empty?
    end
    contents
  end

  def remove_signal_files
    FileUtils.rm_rf(@signal_dir) if @signal_dir
    @signal_dir = nil
  end
end
