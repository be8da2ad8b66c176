# frozen_string_literal: true

require "kino"

# Clients that read slowly or not at all, and pipelining mixed with
# Expect: 100-continue: each case here once broke the server.
RSpec.describe "Slow clients and pipelining" do
  include ServerHelper

  it "keeps other Ruby threads running while a streamed body waits for a client that does not read" do
    chunk = ("x" * (8 << 20)).freeze
    app = lambda do |_env|
      body = Enumerator.new { |y| 40.times { y << chunk } }
      [200, { "content-type" => "application/octet-stream" }, body]
    end
    start_server(app, workers: 1, threads: 1, first_data_timeout: 5)
    socket = connect
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n") # and never read
    wait_until(message: "the app never started streaming") { server.stats[:in_flight] == 1 }
    sleep 0.3 # the worker is now waiting for the socket to drain
    started = monotonic
    sleep 0.2
    expect(monotonic - started).to be < 1.5 # the waiting worker does not hold the GVL
  end

  it "lets a slow but steady reader download a body larger than first_data_timeout allows in one go" do
    size = 12 << 20
    app = ->(_env) { [200, { "content-type" => "application/octet-stream" }, ["y" * size]] }
    start_server(app, first_data_timeout: 1)
    socket = connect
    socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 64 * 1024)
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    received = 0
    deadline = monotonic + 30
    while received < size + 60 && monotonic < deadline
      break unless socket.wait_readable(2)

      data = socket.read_nonblock(256 * 1024, exception: false)
      break if data.nil?
      next if data == :wait_readable

      received += data.bytesize
      sleep 0.02 # about 10 MB/s at most: slower than loopback, never stalled
    end
    expect(received).to be > size
  end

  it "sends exactly one 100 Continue for a pipelined request that expects it" do
    app = ->(env) { [200, { "content-type" => "text/plain" }, [env["rack.input"].read]] }
    start_server(app)
    socket = connect
    socket.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n" \
                 "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    first = read_response(socket)
    expect(first.status).to eq(200)
    interim = read_response(socket)
    expect(interim.status).to eq(100)
    socket.write("hello")
    final = read_response(socket)
    expect(final.status).to eq(200)
    expect(final.body).to eq("hello")
    socket.write("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    last = read_response(socket)
    expect(last.status).to eq(200) # not a stray second 100 Continue
  end
end
