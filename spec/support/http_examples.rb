# frozen_string_literal: true

require "json"
require "time"

# The apps the shared HTTP examples serve. The same examples run in
# :threaded and :ractor mode, so every app here must be shareable: a module
# with `self.call` (modules are shareable), reading only frozen constants,
# keeping no state between requests. Bodies and streams are created per
# request, inside the worker.
#
# An app in a worker ractor cannot share a Queue with the spec, so where an
# example must hold an app at a point (a gate) or learn that the server did
# something to a body (a close), app and spec meet through files: the spec
# names a path in a request header, the app waits for it (Gate.wait) or
# creates it (Gate.open). Both sides put deadlines on the wait.
module HttpApps
  # Fresh headers for each response: Rack 3 asks for an unfrozen Hash.
  def self.text
    { "content-type" => "text/plain" }
  end

  module Gate
    # Longer than ServerHelper::IO_TIMEOUT: a server that held back a chunk
    # until the body ended would fail the example on the client's deadline
    # before this one lets the body go on.
    TIMEOUT = 10

    def self.wait(path)
      raise ArgumentError, "no gate path given" if path.nil? || path.empty?

      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + TIMEOUT
      until File.exist?(path)
        raise "gate #{path} was never opened" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        Kino.sleep(0.01)
      end
    end

    def self.open(path)
      File.write(path, "") if path && !path.empty?
    end
  end

  # A body that yields its chunks (an Exception among them is raised at
  # that point of the iteration) and, when closed, creates the file named
  # by +marker+ so the spec can see the close from outside the worker.
  class TrackedBody
    def initialize(marker, *chunks)
      @marker = marker
      @chunks = chunks
    end

    def each
      @chunks.each do |chunk|
        raise chunk if chunk.is_a?(Exception)

        yield chunk
      end
    end

    def close
      Gate.open(@marker)
    end
  end

  # A TrackedBody that is Array-like too.
  class ArrayLikeBody < TrackedBody
    def to_ary
      @chunks.dup
    end
  end

  # An each body that yields "first\n", waits at the gate, then "last\n".
  class GatedBody
    def initialize(gate)
      @gate = gate
    end

    def each
      yield "first\n"
      Gate.wait(@gate)
      yield "last\n"
    end
  end

  # The String-valued part of the env as JSON, with the body read from
  # rack.input.
  module Echo
    def self.call(env)
      strings = env.select { |_k, v| v.is_a?(String) }
      strings["rack.url_scheme"] = env["rack.url_scheme"]
      strings["rack.input"] = env["rack.input"].read
      body = JSON.generate(strings)
      [200, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
    end
  end

  # Answers with the path, so responses can be told apart; /slow first
  # sleeps 0.2 s.
  module Path
    def self.call(env)
      Kino.sleep(0.2) if env["PATH_INFO"] == "/slow"
      [200, HttpApps.text, ["#{env['PATH_INFO']}\n"]]
    end
  end

  # Where the request was served: the worker ractor's name and the
  # thread's, and whether that is the main ractor.
  module WhereAmI
    def self.call(_env)
      where = { "ractor" => Ractor.current.name, "main" => Ractor.current == Ractor.main,
                "thread" => Thread.current.name }
      [200, { "content-type" => "application/json" }, [JSON.generate(where)]]
    end
  end

  module HeadAware
    def self.call(env)
      body = env["REQUEST_METHOD"] == "HEAD" ? [] : ["hello world"]
      [200, { "content-type" => "text/plain", "content-length" => "11" }, body]
    end
  end

  module BodyStats
    def self.call(env)
      data = env["rack.input"].read
      [200, HttpApps.text, ["#{data.bytesize} #{data.encoding} #{data.count('x')}"]]
    end
  end

  module TimedSleep
    def self.call(_env)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Kino.sleep(0.2)
      [200, HttpApps.text, [(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to_s]]
    end
  end

  # --- the Rack response contract ------------------------------------------

  module ArrayBody
    def self.call(_env)
      [200, HttpApps.text, ["Hello, ", "world"]]
    end
  end

  module GatedEach
    def self.call(env)
      [200, HttpApps.text, GatedBody.new(env["HTTP_X_GATE"])]
    end
  end

  module DeclaredLength
    def self.call(_env)
      [200, { "content-type" => "text/plain", "content-length" => "6" }, TrackedBody.new(nil, "abc", "def")]
    end
  end

  module GatedStream
    def self.call(env)
      gate = env["HTTP_X_GATE"]
      streamed = lambda do |stream|
        stream.write("alpha\n")
        Gate.wait(gate)
        stream << "beta\n"
        stream.close
      end
      [200, HttpApps.text, streamed]
    end
  end

  module UnclosedStream
    def self.call(_env)
      [200, HttpApps.text, ->(stream) { stream.write("done") }]
    end
  end

  module ThreeChunks
    def self.call(_env)
      [200, HttpApps.text, TrackedBody.new(nil, "one ", "two ", "three")]
    end
  end

  module ArrayHeader
    def self.call(_env)
      [200, { "content-type" => "text/plain", "set-cookie" => ["a=1; path=/", "b=2; path=/"] }, ["ok"]]
    end
  end

  # /empty/204 answers 204 (with a body the server must drop), anything
  # else 200 "after". Run without Rack::Lint.
  module NoBodyStatus
    def self.call(env)
      ServerHelper.lint_env(env)
      if (status = env["PATH_INFO"][%r{\A/empty/(\d+)\z}, 1])
        [Integer(status), { "x-status" => status }, ["this must not be sent"]]
      else
        [200, HttpApps.text, ["after"]]
      end
    end
  end

  # Gives a body to HEAD too. Run without Rack::Lint.
  module HeadWithBody
    def self.call(env)
      ServerHelper.lint_env(env)
      [200, HttpApps.text, ["twelve bytes"]]
    end
  end

  # Bodies that say when they are closed: the X-Closed-Marker file.
  module ClosedArrayLike
    def self.call(env)
      ServerHelper.lint_env(env)
      [200, HttpApps.text, ArrayLikeBody.new(env["HTTP_X_CLOSED_MARKER"], "x")]
    end
  end

  module ClosedEach
    def self.call(env)
      [200, HttpApps.text, TrackedBody.new(env["HTTP_X_CLOSED_MARKER"], "a", "b")]
    end
  end

  module RaisingBody
    def self.call(env)
      return [200, HttpApps.text, ["fine"]] unless env["PATH_INFO"] == "/cut"

      [200, HttpApps.text, TrackedBody.new(env["HTTP_X_CLOSED_MARKER"], "part one\n",
                                  RuntimeError.new("body failed midway"), "never\n")]
    end
  end

  module Raising
    def self.call(env)
      raise ArgumentError, "kaboom in the app" if env["PATH_INFO"] == "/boom"

      [200, HttpApps.text, ["fine\n"]]
    end
  end

  # Answers that break the Rack contract, by path. Run without Rack::Lint.
  BAD_RESPONSES = Ractor.make_shareable(
    {
      "a String status" => ["/string-status", ["200", { "content-type" => "text/plain" }, ["x"]]],
      "headers that are not a Hash" => ["/array-headers", [200, [%w[content-type text/plain]], ["x"]]],
      "a nil body" => ["/nil-body", [200, { "content-type" => "text/plain" }, nil]],
      # A non-String header value is written with to_s, as Puma does
      # (spec/http/response_header_values_spec.rb); a non-String name is not.
      "an Integer header name" => ["/integer-header", [200, { "content-type" => "text/plain", 3 => "x" }, ["x"]]]
    }
  )

  module Contract
    def self.call(env)
      ServerHelper.lint_env(env)
      bad = BAD_RESPONSES.each_value.find { |path, _| path == env["PATH_INFO"] }
      bad ? bad.last : [200, HttpApps.text, ["good"]]
    end
  end

  module BadStatusClosed
    def self.call(env)
      ServerHelper.lint_env(env)
      ["200", {}, TrackedBody.new(env["HTTP_X_CLOSED_MARKER"], "x")]
    end
  end

  module EvilHeader
    def self.call(env)
      ServerHelper.lint_env(env)
      [200, { "content-type" => "text/plain", "x-evil" => "a\r\nx-injected: yes", "x-fine" => "1" }, ["ok"]]
    end
  end
end

# What both shared groups below start from: `mode` is the mode the
# including group passes in, and #serve starts a server in it.
RSpec.shared_context "served in a mode" do |mode|
  let(:mode) { mode }

  def serve(app, **options)
    start_server(app, mode: mode, **options)
  end

  def env_of(response)
    JSON.parse(response.body)
  end

  # Sends a request whose head the example writes itself, on a fresh
  # connection that the server is asked to close after answering; returns
  # the socket.
  def raw_get(path, headers = {}, method: "GET")
    socket = connect
    extra = headers.map { |name, value| "#{name}: #{value}\r\n" }.join
    socket.write("#{method} #{path} HTTP/1.1\r\nHost: x\r\n#{extra}Connection: close\r\n\r\n")
    socket
  end
end

# HTTP behaviour of Kino::Server, seen from real clients on a real socket.
# Included by spec/server_spec.rb once per mode.
RSpec.shared_examples "a Kino HTTP server" do |mode|
  include_context "served in a mode", mode

  it "serves from a worker #{mode == :ractor ? 'ractor' : 'thread on the main ractor'}" do
    serve(HttpApps::WhereAmI, workers: 2, threads: 1)
    expect(server.mode).to eq(mode)
    where = env_of(http_get("/"))
    if mode == :ractor
      expect(where).to include("main" => false, "ractor" => a_string_matching(/\Akino-worker-[01]\z/))
    else
      expect(where).to include("main" => true, "thread" => a_string_matching(/\Akino-worker-slot-[01]\z/))
    end
  end

  describe "the Rack env of a GET" do
    it "carries the path, query, server name and port from Host, protocol, peer and headers" do
      serve(HttpApps::Echo)
      response = http_get("/some/path?a=1&b=two", { "Host" => "example.test:8080", "X-Custom-Thing" => "yes",
                                                    "Accept" => "text/plain" })
      expect(response.code).to eq("200")
      expect(env_of(response)).to include(
        "REQUEST_METHOD" => "GET",
        "SCRIPT_NAME" => "",
        "PATH_INFO" => "/some/path",
        "QUERY_STRING" => "a=1&b=two",
        "SERVER_NAME" => "example.test",
        "SERVER_PORT" => "8080",
        "SERVER_PROTOCOL" => "HTTP/1.1",
        "REMOTE_ADDR" => "127.0.0.1",
        "rack.url_scheme" => "http",
        "HTTP_HOST" => "example.test:8080",
        "HTTP_X_CUSTOM_THING" => "yes",
        "HTTP_ACCEPT" => "text/plain"
      )
    end

    it "has an empty QUERY_STRING and no CONTENT_LENGTH without a query or a body" do
      serve(HttpApps::Echo)
      env = env_of(http_get("/"))
      expect(env["PATH_INFO"]).to eq("/")
      expect(env["QUERY_STRING"]).to eq("")
      expect(env).not_to have_key("CONTENT_LENGTH")
      expect(env["rack.input"]).to eq("")
    end

    it "uses the scheme's default port as SERVER_PORT when Host has none (as Puma does)" do
      serve(HttpApps::Echo)
      env = env_of(http_get("/", { "Host" => "example.test" }))
      expect(env["SERVER_NAME"]).to eq("example.test")
      expect(env["SERVER_PORT"]).to eq("80")
    end

    it "uses the listening port as SERVER_PORT when there is no Host at all (HTTP/1.0)" do
      serve(HttpApps::Echo)
      socket = connect
      socket.write("GET / HTTP/1.0\r\n\r\n")
      env = env_of(read_response(socket))
      expect(env["SERVER_NAME"]).to eq("localhost")
      expect(env["SERVER_PORT"]).to eq(server.port.to_s)
    end

    it "joins repeated request headers with \", \"" do
      serve(HttpApps::Echo)
      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Multi: one\r\nX-Multi: two\r\nx-multi: three\r\n" \
                   "Connection: close\r\n\r\n")
      expect(env_of(read_response(socket))["HTTP_X_MULTI"]).to eq("one, two, three")
    end

    it "drops a header spelled with underscores, which must not pose as its dashed twin" do
      serve(HttpApps::Echo)
      [
        "X-Forwarded-For: 10.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n",
        "X_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\n"
      ].each do |headers|
        socket = connect
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n#{headers}Connection: close\r\n\r\n")
        expect(env_of(read_response(socket))["HTTP_X_FORWARDED_FOR"]).to eq("10.0.0.1")
      end

      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n")
      env = env_of(read_response(socket))
      expect(env.keys.grep(/FORWARDED/)).to eq([])
      expect(env.values).not_to include("6.6.6.6")
    end
  end

  describe "HEAD" do
    it "sends the headers, content-length included, and no body bytes" do
      serve(HttpApps::HeadAware)
      socket = raw_get("/thing", method: "HEAD")
      response = read_response(socket, head: true)
      expect(response.status).to eq(200)
      expect(response["content-length"]).to eq("11")
      expect(response["content-type"]).to eq("text/plain")
      expect(read_to_eof(socket)).to eq("")
    end

    it "keeps the connection in step: the next pipelined response follows the head directly" do
      serve(HttpApps::Path)
      socket = connect
      socket.write("HEAD /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
      head = read_response(socket, head: true)
      expect(head.status).to eq(200)
      following = read_response(socket)
      expect([following.status, following.body]).to eq([200, "/second\n"])
    end
  end

  describe "request bodies" do
    it "gives a Content-Length body to the app through rack.input" do
      serve(HttpApps::Echo)
      response = http do |h|
        h.post("/form", "name=kino&kind=server", { "Content-Type" => "application/x-www-form-urlencoded" })
      end
      expect(env_of(response)).to include("REQUEST_METHOD" => "POST", "CONTENT_LENGTH" => "21",
                                          "CONTENT_TYPE" => "application/x-www-form-urlencoded",
                                          "rack.input" => "name=kino&kind=server")
    end

    it "reads a body larger than one socket read" do
      serve(HttpApps::BodyStats)
      payload = "x" * 300_000
      response = http { |h| h.post("/", payload, { "Content-Type" => "application/octet-stream" }) }
      expect(response.body).to eq("300000 ASCII-8BIT 300000")
    end

    it "decodes a chunked body, and keeps trailers out of the env" do
      serve(HttpApps::Echo)
      socket = connect
      socket.write("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
                   "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: sneaky\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      env = env_of(response)
      expect(env["rack.input"]).to eq("hello, world")
      expect(env).not_to have_key("HTTP_X_TRAILER")
    end

    it "answers Expect: 100-continue with 100 Continue before the body is sent, then the response" do
      serve(HttpApps::Echo)
      socket = connect
      socket.write("POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n" \
                   "Connection: close\r\n\r\n")
      interim = read_response(socket)
      expect([interim.status, interim.reason]).to eq([100, "Continue"])
      socket.write("abcde")
      final = read_response(socket)
      expect(final.status).to eq(200)
      expect(env_of(final)["rack.input"]).to eq("abcde")
    end
  end

  describe "persistent connections" do
    it "serves several requests on one HTTP/1.1 connection" do
      serve(HttpApps::Path)
      bodies = http do |h|
        %w[/a /b /c].map do |path|
          response = h.get(path)
          expect(response["connection"]).not_to eq("close")
          response.body
        end
      end
      expect(bodies).to eq(["/a\n", "/b\n", "/c\n"])
      expect(server.stats).to include(connections_accepted: 1, requests_received: 3)
    end

    it "closes an HTTP/1.1 connection after the response when the client asks" do
      serve(HttpApps::Path)
      socket = raw_get("/bye")
      response = read_response(socket)
      expect([response.body, response["connection"]]).to eq(["/bye\n", "close"])
      expect(closed_by_peer?(socket)).to be(true)
    end

    it "closes an HTTP/1.0 connection without keep-alive after the response" do
      serve(HttpApps::Echo)
      socket = connect
      socket.write("GET /old HTTP/1.0\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(response["connection"]).to eq("close")
      expect(env_of(response)).to include("SERVER_PROTOCOL" => "HTTP/1.0", "PATH_INFO" => "/old",
                                          "SERVER_PORT" => server.port.to_s)
      expect(closed_by_peer?(socket)).to be(true)
    end

    it "keeps an HTTP/1.0 connection open when the client sends Connection: keep-alive" do
      serve(HttpApps::Path)
      socket = connect
      socket.write("GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      first = read_response(socket)
      expect([first.body, first["connection"]]).to eq(["/one\n", "keep-alive"])
      socket.write("GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      expect(read_response(socket).body).to eq("/two\n")
      expect(server.stats[:connections_accepted]).to eq(1)
    end

    it "answers pipelined requests, written in one go, in order" do
      serve(HttpApps::Path)
      socket = connect
      socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" \
                   "GET /second HTTP/1.1\r\nHost: x\r\n\r\n" \
                   "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      bodies = Array.new(3) { read_response(socket).body }
      expect(bodies).to eq(["/slow\n", "/second\n", "/third\n"])
      expect(closed_by_peer?(socket)).to be(true)
      expect(server.stats).to include(connections_accepted: 1, requests_received: 3)
    end
  end

  describe "malformed requests" do
    it "answers garbage with 400 and connection: close, closes, and goes on serving" do
      serve(HttpApps::Path)
      socket = connect
      socket.write("GARBAGE\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(400)
      expect(response["connection"]).to eq("close")
      expect(closed_by_peer?(socket)).to be(true)
      expect(server.stats[:parse_errors]).to eq(1)

      expect(http_get("/after").body).to eq("/after\n")
    end

    it "refuses an HTTP/1.1 request without Host" do
      serve(HttpApps::Path)
      socket = connect
      socket.write("GET / HTTP/1.1\r\n\r\n")
      expect(read_response(socket).status).to eq(400)
      expect(closed_by_peer?(socket)).to be(true)
    end
  end

  describe "the response head" do
    it "carries a date header and a reason phrase" do
      serve(HttpApps::Path)
      response = http_get("/")
      expect(response.message).to eq("OK")
      expect(Time.httpdate(response["date"])).to be_within(60).of(Time.now)
    end
  end

  describe "Kino.sleep" do
    it "sleeps for the time asked inside an app" do
      serve(HttpApps::TimedSleep)
      elapsed = Float(http_get("/").body)
      expect(elapsed).to be >= 0.19
      expect(elapsed).to be < 2.0
    end
  end

  describe "#shutdown" do
    it "finishes a request in flight, then refuses new connections" do
      serve(HttpApps::Path)
      socket = connect
      socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
      wait_until(message: "the request never reached the app") { requests_in_app == 1 }
      expect(server.shutdown(5)).to eq(0)
      response = read_response(socket)
      expect([response.status, response.body]).to eq([200, "/slow\n"])
      expect { connect(server.port) }.to raise_error(SystemCallError)
    end
  end
end

# The Rack response contract as Kino::Worker carries it out, seen on the
# wire: every kind of body, the close promise, and what happens to apps
# that fail or answer wrongly. Included by spec/worker_spec.rb once per mode.
RSpec.shared_examples "the Rack response contract" do |mode|
  include_context "served in a mode", mode

  def wait_for_close(marker)
    wait_for_file(marker, message: "body.close was never called")
  end

  describe "bodies" do
    it "sends an Array body with its content-length" do
      serve(HttpApps::ArrayBody)
      response = read_response(raw_get("/"))
      expect(response.status).to eq(200)
      expect(response["content-length"]).to eq("12")
      expect(response.chunked?).to be(false)
      expect(response.body).to eq("Hello, world")
    end

    it "sends an each body chunked, each chunk as the app produces it" do
      gate = signal_path("gate")
      serve(HttpApps::GatedEach)
      socket = raw_get("/stream", { "X-Gate" => gate })
      begin
        response = read_head(socket)
        expect(response.status).to eq(200)
        expect(response.chunked?).to be(true)
        # The app is still held at the gate: this chunk can only be here if
        # the server sent it before the body finished.
        expect(read_chunk(socket)).to eq("first\n")
      ensure
        open_gate(gate)
      end
      read_body(socket, response)
      expect(response.body).to eq("last\n")
      expect(response.complete?).to be(true)
    end

    it "uses the content-length an each body's app declares instead of chunking" do
      serve(HttpApps::DeclaredLength)
      response = read_response(raw_get("/"))
      expect(response.chunked?).to be(false)
      expect([response["content-length"], response.body]).to eq(%w[6 abcdef])
    end

    it "streams a Rack 3 body that responds to call, as it writes" do
      gate = signal_path("gate")
      serve(HttpApps::GatedStream)
      socket = raw_get("/", { "X-Gate" => gate })
      begin
        response = read_head(socket)
        expect(response.chunked?).to be(true)
        expect(read_chunk(socket)).to eq("alpha\n")
      ensure
        open_gate(gate)
      end
      read_body(socket, response)
      expect(response.body).to eq("beta\n")
      expect(response.complete?).to be(true)
    end

    it "ends a Rack 3 streaming body properly even if the app does not close the stream" do
      serve(HttpApps::UnclosedStream)
      expect(http_get("/").body).to eq("done")
    end

    it "streams to an HTTP/1.0 client without chunked coding, ending the body with the close" do
      serve(HttpApps::ThreeChunks)
      socket = connect
      socket.write("GET / HTTP/1.0\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(response["transfer-encoding"]).to be_nil
      expect(response["content-length"]).to be_nil
      expect(response["connection"]).to eq("close")
      expect(response.body).to eq("one two three")
      expect(closed_by_peer?(socket)).to be(true)
    end

    it "sends each value of an Array header as a line of its own" do
      serve(HttpApps::ArrayHeader)
      response = read_response(raw_get("/"))
      expect(response.all("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
      expect(http_get("/").get_fields("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
    end

    [204, 304].each do |status|
      it "sends no body and no body framing for #{status}, even if the app gives one" do
        serve(HttpApps::NoBodyStatus, lint: false)
        socket = connect
        socket.write("GET /empty/#{status} HTTP/1.1\r\nHost: x\r\n\r\n" \
                     "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        empty = read_response(socket)
        expect(empty.status).to eq(status)
        expect(empty["x-status"]).to eq(status.to_s)
        expect(empty["content-length"]).to be_nil
        expect(empty["transfer-encoding"]).to be_nil
        following = read_response(socket)
        expect([following.status, following.body]).to eq([200, "after"])
      end
    end

    it "sends no body for HEAD even when the app gives one, with the length it would have had" do
      serve(HttpApps::HeadWithBody, lint: false)
      socket = raw_get("/", method: "HEAD")
      response = read_response(socket, head: true)
      expect(response["content-length"]).to eq("12")
      expect(read_to_eof(socket)).to eq("")
    end
  end

  describe "body.close" do
    # Without Rack::Lint, whose to_ary closes the body itself (as the SPEC
    # asks of bodies with to_ary), so only the server can close this one.
    it "is called after an Array-like body is sent" do
      marker = signal_path("closed")
      serve(HttpApps::ClosedArrayLike, lint: false)
      expect(read_response(raw_get("/", { "X-Closed-Marker" => marker })).body).to eq("x")
      wait_for_close(marker)
    end

    it "is called after an each body is sent" do
      marker = signal_path("closed")
      serve(HttpApps::ClosedEach)
      expect(read_response(raw_get("/", { "X-Closed-Marker" => marker })).body).to eq("ab")
      wait_for_close(marker)
    end

    it "is called when the body raises mid-way, and the client sees a cut-off body, not a clean end" do
      marker = signal_path("closed")
      serve(HttpApps::RaisingBody)
      socket = connect
      socket.write("GET /cut HTTP/1.1\r\nHost: x\r\nX-Closed-Marker: #{marker}\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(response.chunked?).to be(true)
      expect(response.body).to eq("part one\n")
      expect(response.complete?).to be(false)
      expect(closed_by_peer?(socket)).to be(true)
      wait_for_close(marker)
      expect(http_get("/again").body).to eq("fine")
    end
  end

  describe "an app that raises" do
    it "gets a 500, and the same connection goes on serving" do
      serve(HttpApps::Raising)
      http do |h|
        failed = h.get("/boom")
        expect(failed.code).to eq("500")
        expect(failed.body).to eq("Internal Server Error\n")
        expect(h.get("/next").body).to eq("fine\n")
      end
      expect(server.stats[:connections_accepted]).to eq(1)
      expect(server.stats[:respawns]).to eq(0) # a StandardError does not cost the worker
    end

    it "has the error and its backtrace written to the server's log" do
      serve(HttpApps::Raising)
      expect(http_get("/boom").code).to eq("500")
      log = wait_for_log(/kaboom in the app/, timeout: 2)
      expect(log).to include("GET /boom", "ArgumentError", "kaboom in the app")
      expect(log).to match(%r{^\s+\S*spec/support/http_examples\.rb:\d+})
    end
  end

  describe "an answer that breaks the Rack contract" do
    HttpApps::BAD_RESPONSES.each do |what, (path, _response)|
      it "with #{what} becomes a 500, and the server goes on serving" do
        serve(HttpApps::Contract, lint: false)
        expect(http_get(path).code).to eq("500")
        response = http_get("/good")
        expect([response.code, response.body]).to eq(%w[200 good])
      end
    end

    it "still has its body closed" do
      marker = signal_path("closed")
      serve(HttpApps::BadStatusClosed, lint: false)
      expect(read_response(raw_get("/", { "X-Closed-Marker" => marker })).status).to eq(500)
      wait_for_close(marker)
    end

    it "has a header value with a line break dropped, never sent as a header of its own" do
      serve(HttpApps::EvilHeader, lint: false)
      response = read_response(raw_get("/"))
      expect(response.status).to eq(200)
      expect(response["x-fine"]).to eq("1")
      expect(response["x-injected"]).to be_nil
      expect(response["x-evil"]).to be_nil
      expect(wait_for_log(/response header dropped/)).to include("x-evil")
    end
  end
end
