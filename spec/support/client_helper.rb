# frozen_string_literal: true

require "io/wait"
require "json"
require "net/http"
require "socket"
require_relative "wait_helper"

# The client side of the wire: Net::HTTP with timeouts on everything, and
# raw loopback sockets (#connect, closed after the example) with readers
# of what comes back (#read_response, #read_head, #read_body,
# #read_chunk), for examples that choose the bytes and their timing. The
# port is the one of ServerHelper's #server unless one is given.
module ClientHelper
  include WaitHelper

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

  # A port nobody listens on right now.
  def free_port
    probe = TCPServer.new("127.0.0.1", 0)
    probe.addr[1]
  ensure
    probe&.close
  end

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

  # A fresh connection (#connect) with +bytes+ written on it.
  def connect_with(bytes, port = server.port)
    socket = connect(port)
    socket.write(bytes)
    socket
  end

  # Sends a request whose head the example writes itself, on a fresh
  # connection that the server is asked to close after answering; returns
  # the socket.
  def raw_get(path, headers = {}, method: "GET")
    extra = headers.map { |name, value| "#{name}: #{value}\r\n" }.join
    connect_with("#{method} #{path} HTTP/1.1\r\nHost: x\r\n#{extra}Connection: close\r\n\r\n")
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

  # Reads the 100 Continue that a request sent with `Expect: 100-continue`
  # is due before its body, then sends +body+ and reads the final response.
  def send_after_continue(socket, body)
    interim = read_response(socket)
    expect([interim.status, interim.reason]).to eq([100, "Continue"])
    socket.write(body)
    read_response(socket)
  end

  # Reads the response that ends a connection: it must have +status+ and
  # `connection: close`, and the server must close the connection after it.
  # Returns the response.
  def read_last_response(socket, status)
    response = read_response(socket)
    expect(response.status).to eq(status)
    expect(response["connection"]).to eq("close")
    expect(closed_by_peer?(socket)).to be(true)
    response
  end

  # The JSON a response's body holds: the env, for apps that echo it.
  def env_of(response)
    JSON.parse(response.body)
  end

  # The status line and headers only; the body is left on the socket (read
  # it with #read_chunk or #read_body).
  def read_head(socket, deadline: monotonic + IO_TIMEOUT)
    status_line = read_line(socket, deadline)
    raise EOFError, "connection closed before a response" if status_line.nil?

    version, status, reason = status_line.split(" ", 3)
    unless version&.start_with?("HTTP/") && status =~ /\A\d{3}\z/
      raise "not an HTTP status line: #{status_line.inspect}"
    end

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
    while buffer.bytesize < count && !@wire_eof[socket]
      buffer << fill(socket, deadline, "#{count} bytes (have #{buffer.bytesize})")
    end
    buffer.slice!(0, count)
  end

  def close_clients
    (@sockets || []).each { |s| s.close unless s.closed? }
    @sockets = nil
  end

  private

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
end
