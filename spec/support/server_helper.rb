# frozen_string_literal: true

require "io/wait"
require "net/http"
require "rack"
require "rack/lint"
require "fileutils"
require "rbconfig"
require "socket"
require "stringio"
require "tmpdir"

# The one way specs reach a real Kino: an in-process Kino::Server on an
# ephemeral loopback port (#start_server), or `exe/kino` as a child process
# (#spawn_kino). Both are torn down after every example, as are the client
# sockets opened through #connect. Every wait on a socket or a process has a
# deadline, so a server bug fails an example instead of hanging the suite.
module ServerHelper
  ROOT = File.expand_path("../..", __dir__)
  FIXTURES = File.join(ROOT, "spec", "fixtures")

  # Generous: the suite runs on small, noisy machines. A correct server
  # answers in milliseconds; these only bound how long a broken one can
  # stall an example.
  IO_TIMEOUT = 5
  BOOT_TIMEOUT = 20

  class WaitTimeout < StandardError; end

  # A response as read off the wire. Header names are downcased; `headers`
  # joins repeated fields with ", ", `header_lines` keeps each line.
  Response = Struct.new(:version, :status, :reason, :header_lines, :body, :chunks, :complete,
                        keyword_init: true) do
    def headers
      header_lines.each_with_object({}) do |(name, value), all|
        all[name] = all.key?(name) ? "#{all[name]}, #{value}" : value
      end
    end

    def [](name)
      headers[name.downcase]
    end

    def all(name)
      header_lines.select { |n, _| n == name.downcase }.map(&:last)
    end

    def chunked?
      self["transfer-encoding"].to_s.downcase == "chunked"
    end

    # Whether the body ended as its framing says it should (the last chunk,
    # or content-length bytes), rather than by the connection dropping.
    def complete?
      complete
    end
  end

  # ---------------------------------------------------------------------
  # In-process server

  # Starts a Kino::Server for +app+ (a callable, or the block) on
  # 127.0.0.1:0 and returns it, in :threaded mode unless told otherwise
  # (test apps close over Queues and locals, which ractors cannot share). The app is wrapped in Rack::Lint unless
  # `lint: false`; apps that break the response contract on purpose use
  # #lint_env to still have their env checked. The server logs into
  # #server_log.
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

  # Polls the block until it is truthy; fails the example after +timeout+.
  def wait_until(timeout: IO_TIMEOUT, interval: 0.01, message: "condition not met")
    deadline = monotonic + timeout
    loop do
      result = yield
      return result if result
      raise WaitTimeout, "after #{timeout}s: #{message.respond_to?(:call) ? message.call : message}" if monotonic > deadline

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

  # Requests the server's workers hold right now: taken from the queue
  # and not yet answered (the in_flight count includes queued ones).
  def requests_in_app(server = self.server)
    stats = server.stats
    stats[:in_flight] - stats[:queued]
  end

  # A port nobody listens on right now.
  def free_port
    probe = TCPServer.new("127.0.0.1", 0)
    probe.addr[1]
  ensure
    probe&.close
  end

  # ---------------------------------------------------------------------
  # Clients

  # Net::HTTP to the server, with timeouts on everything. With a block,
  # yields the started session (one keep-alive connection).
  def http(port = server.port, &block)
    client = Net::HTTP.new("127.0.0.1", port)
    client.open_timeout = IO_TIMEOUT
    client.read_timeout = IO_TIMEOUT
    client.write_timeout = IO_TIMEOUT
    client.keep_alive_timeout = 30
    client.max_retries = 0
    block ? client.start(&block) : client
  end

  def http_get(path, headers = {}, port: server.port)
    http(port) { |h| h.get(path, headers) }
  end

  # A raw TCP connection to the server, closed after the example.
  def connect(port = server.port)
    socket = Socket.tcp("127.0.0.1", port, connect_timeout: IO_TIMEOUT)
    (@sockets ||= []) << socket
    socket
  end

  # Reads one response (status line, headers and body) from +socket+.
  # `head: true` for the answer to a HEAD request (no body follows). A
  # 1xx interim response is returned as it is; read again for the final one.
  def read_response(socket, head: false, timeout: IO_TIMEOUT)
    deadline = monotonic + timeout
    response = read_head(socket, deadline: deadline)
    read_body(socket, response, head: head, deadline: deadline)
    response
  end

  # The status line and headers only; the body is left on the socket (read
  # it with #read_chunk or #read_body).
  def read_head(socket, deadline: monotonic + IO_TIMEOUT)
    status_line = read_line(socket, deadline)
    raise EOFError, "connection closed before a response" if status_line.nil?

    version, status, reason = status_line.split(" ", 3)
    raise "not an HTTP status line: #{status_line.inspect}" unless version&.start_with?("HTTP/") && status =~ /\A\d{3}\z/

    lines = []
    loop do
      line = read_line(socket, deadline)
      raise EOFError, "connection closed inside the response head" if line.nil?
      break if line.empty?

      name, value = line.split(":", 2)
      raise "malformed header line: #{line.inspect}" if value.nil?

      lines << [name.downcase, value.strip]
    end
    Response.new(version: version, status: Integer(status), reason: reason.to_s, header_lines: lines,
                 body: +"", chunks: [], complete: false)
  end

  # Reads the body of +response+ (whose head was just read) as its framing
  # says: none, content-length, chunked, or until the connection closes.
  def read_body(socket, response, head: false, deadline: monotonic + IO_TIMEOUT)
    status = response.status
    if head || status < 200 || status == 204 || status == 304
      response.complete = true
    elsif response.chunked?
      while (chunk = read_chunk(socket, deadline: deadline, response: response))
        response.chunks << chunk
        response.body << chunk
      end
    elsif response["content-length"]
      length = Integer(response["content-length"])
      response.body << read_bytes(socket, length, deadline)
      response.complete = response.body.bytesize == length
    else
      response.body << read_to_eof(socket, deadline: deadline)
      response.complete = true
    end
    response
  end

  # One chunk of a chunked body: its data, or nil after the last chunk (the
  # response is then marked complete) or when the connection closes first.
  def read_chunk(socket, deadline: monotonic + IO_TIMEOUT, response: nil)
    size_line = read_line(socket, deadline)
    return nil if size_line.nil?

    size = Integer(size_line.split(";", 2).first.strip, 16)
    if size.zero?
      # Trailers, then the empty line.
      while (line = read_line(socket, deadline))
        break if line.empty?
      end
      response.complete = !line.nil? if response
      return nil
    end
    data = read_bytes(socket, size, deadline)
    return nil if data.bytesize < size

    crlf = read_bytes(socket, 2, deadline)
    raise "chunk not followed by CRLF: #{crlf.inspect}" unless crlf == "\r\n"

    data
  end

  # Everything until the peer closes the connection.
  def read_to_eof(socket, deadline: monotonic + IO_TIMEOUT)
    buffer = wire_buffer(socket)
    buffer << fill(socket, deadline, "end of stream") until @wire_eof[socket]
    buffer.slice!(0, buffer.bytesize)
  end

  # True when the peer closes the connection within +timeout+ without
  # sending anything more; false if bytes arrive or it stays open.
  def closed_by_peer?(socket, timeout: IO_TIMEOUT)
    buffer = wire_buffer(socket)
    return false unless buffer.empty?
    return true if @wire_eof[socket]

    fill(socket, monotonic + timeout, "end of stream")
    buffer.empty? && @wire_eof[socket]
  rescue WaitTimeout
    false
  end

  # One CRLF-terminated line, without the CRLF; nil at end of stream.
  def read_line(socket, deadline)
    buffer = wire_buffer(socket)
    until (index = buffer.index("\r\n"))
      return nil if @wire_eof[socket]

      buffer << fill(socket, deadline, "a line (have #{buffer.inspect})")
    end
    line = buffer.slice!(0, index + 2)
    line.chomp("\r\n")
  end

  # +count+ bytes, or fewer if the stream ends first.
  def read_bytes(socket, count, deadline)
    buffer = wire_buffer(socket)
    buffer << fill(socket, deadline, "#{count} bytes (have #{buffer.bytesize})") while buffer.bytesize < count && !@wire_eof[socket]
    buffer.slice!(0, count)
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

  def wire_buffer(socket)
    @wire_buffers ||= {}.compare_by_identity
    @wire_eof ||= {}.compare_by_identity
    @wire_buffers[socket] ||= String.new(encoding: Encoding::BINARY)
  end

  # Waits for bytes on +socket+ until +deadline+; returns them ("" at end of
  # stream, which it records).
  def fill(socket, deadline, waiting_for)
    loop do
      left = deadline - monotonic
      raise WaitTimeout, "timed out waiting for #{waiting_for}" if left <= 0
      next unless socket.wait_readable(left)

      data = socket.read_nonblock(65_536, exception: false)
      next if data == :wait_readable

      if data.nil?
        @wire_eof[socket] = true
        return +""
      end
      return data.b
    end
  rescue Errno::ECONNRESET
    @wire_eof[socket] = true
    +""
  end

  public

  # ---------------------------------------------------------------------
  # exe/kino as a child process

  # A running `exe/kino`. Its stdout and stderr are collected as they come.
  class KinoProcess
    attr_reader :pid

    def initialize(args, env:, spawn_options: {})
      out_r, out_w = IO.pipe
      err_r, err_w = IO.pipe
      @output = { out: +"", err: +"" }
      @mutex = Mutex.new
      @pid = Process.spawn(env, RbConfig.ruby, "exe/kino", *args, chdir: ROOT, out: out_w, err: err_w,
                                                                  in: File::NULL, **spawn_options)
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
    def wait_for_stdout(pattern, timeout: BOOT_TIMEOUT)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        return stdout if stdout.match?(pattern)

        if exited? || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          @readers.each { |t| t.join(1) }
          return stdout if stdout.match?(pattern)

          why = exited? ? "kino exited (#{@status.inspect})" : "timed out after #{timeout}s"
          raise WaitTimeout, "#{why} before stdout matched #{pattern.inspect}\n" \
                             "stdout:\n#{stdout}\nstderr:\n#{stderr}"
        end
        sleep 0.02
      end
    end

    def wait_for_banner
      wait_for_stdout(/^\* Listening on .*\n/)
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
    def wait(timeout: IO_TIMEOUT)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      until exited?
        return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.01
      end
      @readers.each { |t| t.join(2) }
      @status
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
      rescue EOFError, IOError
        nil
      ensure
        io.close unless io.closed?
      end
    end
  end

  # Starts `ruby exe/kino ARGS` from the checkout root (relative paths in
  # +args+ are relative to it). `port:` adds `-p PORT`; `wait: true` waits
  # for the "Listening on" banner line.
  def spawn_kino(*args, port: nil, env: {}, wait: true, spawn_options: {})
    args = ["-p", port.to_s, *args] if port
    process = KinoProcess.new(args, env: env, spawn_options: spawn_options)
    (@kino_processes ||= []) << process
    process.wait_for_banner if wait
    process
  end

  # ---------------------------------------------------------------------

  def teardown_servers
    (@sockets || []).each { |s| s.close unless s.closed? }
    @sockets = nil
    (@servers || []).each { |s| s.shutdown(2) }
    @servers = nil
    restore_stderr
    (@kino_processes || []).each(&:stop)
    @kino_processes = nil
    FileUtils.rm_rf(@signal_dir) if @signal_dir
    @signal_dir = nil
  end
end

RSpec.configure do |config|
  config.include ServerHelper
  config.after { teardown_servers }
end
