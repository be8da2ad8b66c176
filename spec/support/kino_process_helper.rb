# frozen_string_literal: true

require "rbconfig"
require_relative "server_helper"
require_relative "wait_helper"

# `exe/kino` as a child process (#spawn_kino), stopped after every
# example. Other commands that start Kino (`rackup -s kino`,
# `bin/rails server -u kino`) run the same way with `command:`.
module KinoProcessHelper
  KINO_COMMAND = [RbConfig.ruby, File.join(ServerHelper::ROOT, "exe/kino")].freeze

  # A running `exe/kino`. Its stdout and stderr are collected as they come.
  class KinoProcess
    attr_reader :pid

    # +wrapper+ is a command that execs the rest of its arguments (it runs
    # first, as the same process: `sh -c '...; exec "$@"' sh`).
    def initialize(args, env:, chdir: ServerHelper::ROOT, spawn_options: {}, command: KINO_COMMAND, wrapper: [])
      out_r, out_w = IO.pipe
      err_r, err_w = IO.pipe
      @output = { out: +"", err: +"" }
      @mutex = Mutex.new
      @pid = Process.spawn(env, *wrapper, *command, *args,
                           chdir: chdir, out: out_w, err: err_w, in: File::NULL, **spawn_options)
      out_w.close
      err_w.close
      @readers = [pump(out_r, :out), pump(err_r, :err)]
      @status = nil
    end

    def stdout
      @mutex.synchronize { @output[:out].dup }
    end

    def stderr
      @mutex.synchronize { @output[:err].dup }
    end

    # Waits until stdout matches +pattern+; fails (with what the process
    # said) if it exits first or takes longer than +timeout+.
    def wait_for_stdout(pattern, timeout: WaitHelper::BOOT_TIMEOUT)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        return stdout if stdout.match?(pattern)

        if exited? || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          @readers.each { |t| t.join(1) }
          return stdout if stdout.match?(pattern)

          why = exited? ? "kino exited (#{@status.inspect})" : "timed out after #{timeout}s"
          raise WaitHelper::WaitTimeout, "#{why} before stdout matched #{pattern.inspect}\n" \
                                         "stdout:\n#{stdout}\nstderr:\n#{stderr}"
        end
        sleep 0.02
      end
    end

    def wait_for_banner
      wait_for_stdout(/^\* Listening on .*\n/)
    end

    # The port of the first TCP address in the banner (after `-p 0`).
    def listening_port
      Integer(wait_for_stdout(%r{^\* Listening on \w+://[^\n]*:\d+\n})[%r{^\* Listening on \w+://\S*:(\d+)\n}, 1])
    end

    def signal(name)
      Process.kill(name, @pid)
    end

    def exited?
      return true if @status

      _, status = Process.waitpid2(@pid, Process::WNOHANG)
      @status = status if status
      !@status.nil?
    rescue Errno::ECHILD
      true
    end

    # The Process::Status once the process has exited within +timeout+,
    # else nil. Output read so far is complete once this returns a status.
    def wait(timeout: WaitHelper::IO_TIMEOUT)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      until exited?
        return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.01
      end
      @readers.each { |t| t.join(2) }
      @status
    end

    # Whether stdout and stderr reached their end: false while anything
    # the process started still holds them (after #wait).
    def output_closed?
      @readers.none?(&:alive?)
    end

    # TERM, then KILL if it lingers.
    def stop
      return if exited?

      signal("TERM")
      return if wait(timeout: 5)

      signal("KILL")
      wait(timeout: 5)
    rescue Errno::ESRCH
      nil
    end

    private

    def pump(io, key)
      Thread.new do
        while (data = io.readpartial(4096))
          @mutex.synchronize { @output[key] << data }
        end
      rescue IOError # EOFError too
        nil
      ensure
        io.close unless io.closed?
      end
    end
  end

  # Starts `ruby exe/kino ARGS` in +chdir+, the checkout root unless told
  # (relative paths in +args+ are relative to it). `port:` adds `-p PORT`;
  # `wait: true` waits for the "Listening on" banner line.
  def spawn_kino(*args, port: nil, env: {}, wait: true, chdir: ServerHelper::ROOT, spawn_options: {},
                 command: KINO_COMMAND, wrapper: [])
    args = ["-p", port.to_s, *args] if port
    process = KinoProcess.new(args, env: env, chdir: chdir, spawn_options: spawn_options, command: command,
                                    wrapper: wrapper)
    (@kino_processes ||= []) << process
    process.wait_for_banner if wait
    process
  end

  def stop_kino_processes
    (@kino_processes || []).each(&:stop)
    @kino_processes = nil
  end
end
