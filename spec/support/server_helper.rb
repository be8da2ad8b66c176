# frozen_string_literal: true

require "rack"
require "rack/lint"
require "stringio"
require_relative "wait_helper"

# An in-process Kino::Server on an ephemeral loopback port
# (#start_server), and its log; servers are shut down after every
# example. spec/support/kino_process_helper.rb runs `exe/kino` instead.
module ServerHelper
  include WaitHelper

  # The checkout, and the apps servers load from it.
  ROOT = File.expand_path("../..", __dir__)
  FIXTURES = File.join(ROOT, "spec", "fixtures")

  # Starts a Kino::Server for +app+ (a callable, or the block) on
  # 127.0.0.1:0 and returns it, in :threaded mode unless told otherwise
  # (test apps close over Queues and locals, which ractors cannot share).
  # The app is wrapped in Rack::Lint unless `lint: false`; apps that break
  # the response contract on purpose use #lint_env to still have their env
  # checked. The server logs into #server_log.
  def start_server(app = nil, lint: true, mode: :threaded, workers: 1, threads: 4, **options, &block)
    app ||= block
    raise ArgumentError, "start_server needs an app" unless app

    app = Rack::Lint.new(app) if lint
    @server_log ||= StringIO.new
    capture_stderr
    server = Kino::Server.new(app, log: @server_log, port: 0, bind: "127.0.0.1", mode: mode,
                                   workers: workers, threads: threads, **options)
    (@servers ||= []) << server
    server.start
    @server = server
  end

  attr_reader :server

  def server_log
    (@server_log ||= StringIO.new).string
  end

  # What went to $stderr while an in-process server ran. It is captured so
  # the suite's output stays readable; a server should log to its own log.
  def captured_stderr
    @captured_stderr&.string.to_s
  end

  # Waits until the server log matches +pattern+ (native lines reach it
  # through a pump thread, a little later than the response) and returns it.
  def wait_for_log(pattern, timeout: IO_TIMEOUT)
    wait_until(timeout: timeout, message: lambda {
      "server log never matched #{pattern.inspect}:\n#{server_log}\n$stderr meanwhile:\n#{captured_stderr}"
    }) do
      server_log.match?(pattern)
    end
    server_log
  end

  # Checks +env+ against Rack::Lint's request rules only, for apps run with
  # `lint: false` because their response is wrong on purpose.
  def self.lint_env(env)
    _status, _headers, body = Rack::Lint.new(->(_) { [200, {}, []] }).call(env.dup)
    body.close
  end

  def lint_env(env)
    ServerHelper.lint_env(env)
  end

  # Requests the server's worker threads hold right now: taken and not yet
  # answered, as each thread's slot says. Not in_flight - queued: a request
  # counts in flight a moment before it enters the queue, so that reads 1
  # before any worker has it.
  def requests_in_app(server = self.server)
    server.stats[:slots].count { |row| row[:in_flight] }
  end

  def stop_servers
    (@servers || []).each { |s| s.shutdown(2) }
    @servers = nil
    restore_stderr
  end

  private

  def capture_stderr
    return if @captured_stderr

    @captured_stderr = StringIO.new
    @original_stderr = $stderr
    $stderr = @captured_stderr
  end

  def restore_stderr
    $stderr = @original_stderr if @captured_stderr
    @captured_stderr = nil
  end
end
