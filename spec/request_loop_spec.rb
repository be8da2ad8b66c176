# frozen_string_literal: true

require "kino"

# The apps the response contract's examples serve, shareable so that they
# run in both modes (spec/support/http_apps.rb says what that asks of an
# app). Bodies that must say when they are closed create the file named by
# the X-Closed-Marker header.
module ResponseContractApps
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
      HttpApps::Gate.open(@marker)
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
      HttpApps::Gate.wait(@gate)
      yield "last\n"
    end
  end

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
        HttpApps::Gate.wait(gate)
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

# The Rack response contract as Kino::RequestLoop carries it out, seen on the
# wire: every kind of body, the close promise, and what happens to apps
# that fail or answer wrongly, in both modes; then what only :threaded
# mode can run.
RSpec.describe Kino::RequestLoop do
  # Reads a chunked response whose app is held after its first chunk. The
  # app is still held while that chunk is read, so it can only be here if
  # the server sent it before the body ended; then +release+ lets the app
  # go on (whatever happened), and the rest must end the body properly.
  def expect_chunk_while_held(socket, first, rest:, release:)
    begin
      response = read_head(socket)
      expect(response.status).to eq(200)
      expect(response.chunked?).to be(true)
      expect(read_chunk(socket)).to eq(first)
    ensure
      release.call
    end
    read_body(socket, response)
    expect(response.body).to eq(rest)
    expect(response.complete?).to be(true)
  end

  in_each_mode do
    def wait_for_close(marker)
      wait_for_file(marker, message: "body.close was never called")
    end

    describe "bodies" do
      it "sends an Array body with its content-length" do
        serve(ResponseContractApps::ArrayBody)
        response = read_response(raw_get("/"))
        expect(response.status).to eq(200)
        expect(response["content-length"]).to eq("12")
        expect(response.chunked?).to be(false)
        expect(response.body).to eq("Hello, world")
      end

      {
        "sends an each body chunked, each chunk as the app produces it" =>
          [ResponseContractApps::GatedEach, "/stream", "first\n", "last\n"],
        "streams a Rack 3 body that responds to call, as it writes" =>
          [ResponseContractApps::GatedStream, "/", "alpha\n", "beta\n"]
      }.each do |what, (app, path, first, rest)|
        it what do
          gate = signal_path("gate")
          serve(app)
          socket = raw_get(path, { "X-Gate" => gate })
          expect_chunk_while_held(socket, first, rest: rest, release: -> { open_gate(gate) })
        end
      end

      it "uses the content-length an each body's app declares instead of chunking" do
        serve(ResponseContractApps::DeclaredLength)
        response = read_response(raw_get("/"))
        expect(response.chunked?).to be(false)
        expect([response["content-length"], response.body]).to eq(%w[6 abcdef])
      end

      it "ends a Rack 3 streaming body properly even if the app does not close the stream" do
        serve(ResponseContractApps::UnclosedStream)
        expect(http_get("/").body).to eq("done")
      end

      it "streams to an HTTP/1.0 client without chunked coding, ending the body with the close" do
        serve(ResponseContractApps::ThreeChunks)
        socket = connect_with("GET / HTTP/1.0\r\n\r\n")
        response = read_response(socket)
        expect(response.status).to eq(200)
        expect(response["transfer-encoding"]).to be_nil
        expect(response["content-length"]).to be_nil
        expect(response["connection"]).to eq("close")
        expect(response.body).to eq("one two three")
        expect(closed_by_peer?(socket)).to be(true)
      end

      it "sends each value of an Array header as a line of its own" do
        serve(ResponseContractApps::ArrayHeader)
        response = read_response(raw_get("/"))
        expect(response.all("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
        expect(http_get("/").get_fields("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
      end

      [204, 304].each do |status|
        it "sends no body and no body framing for #{status}, even if the app gives one" do
          serve(ResponseContractApps::NoBodyStatus, lint: false)
          socket = connect_with("GET /empty/#{status} HTTP/1.1\r\nHost: x\r\n\r\n" \
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
        serve(ResponseContractApps::HeadWithBody, lint: false)
        socket = raw_get("/", method: "HEAD")
        response = read_response(socket, head: true)
        expect(response["content-length"]).to eq("12")
        expect(read_to_eof(socket)).to eq("")
      end
    end

    describe "body.close" do
      {
        # Without Rack::Lint, whose to_ary closes the body itself (as the
        # SPEC asks of bodies with to_ary), so only the server can close it.
        "an Array-like body" => [ResponseContractApps::ClosedArrayLike, { lint: false }, "x"],
        "an each body" => [ResponseContractApps::ClosedEach, {}, "ab"]
      }.each do |what, (app, options, body)|
        it "is called after #{what} is sent" do
          marker = signal_path("closed")
          serve(app, **options)
          expect(read_response(raw_get("/", { "X-Closed-Marker" => marker })).body).to eq(body)
          wait_for_close(marker)
        end
      end

      it "is called when the body raises mid-way, and the client sees a cut-off body, not a clean end" do
        marker = signal_path("closed")
        serve(ResponseContractApps::RaisingBody)
        socket = connect_with("GET /cut HTTP/1.1\r\nHost: x\r\nX-Closed-Marker: #{marker}\r\n\r\n")
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
        serve(ResponseContractApps::Raising)
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
        serve(ResponseContractApps::Raising)
        expect(http_get("/boom").code).to eq("500")
        log = wait_for_log(/kaboom in the app/, timeout: 2)
        expect(log).to include("GET /boom", "ArgumentError", "kaboom in the app")
        expect(log).to match(%r{^\s+\S*spec/request_loop_spec\.rb:\d+})
      end
    end

    describe "an answer that breaks the Rack contract" do
      ResponseContractApps::BAD_RESPONSES.each do |what, (path, _response)|
        it "with #{what} becomes a 500, and the server goes on serving" do
          serve(ResponseContractApps::Contract, lint: false)
          expect(http_get(path).code).to eq("500")
          response = http_get("/good")
          expect([response.code, response.body]).to eq(%w[200 good])
        end
      end

      it "still has its body closed" do
        marker = signal_path("closed")
        serve(ResponseContractApps::BadStatusClosed, lint: false)
        expect(read_response(raw_get("/", { "X-Closed-Marker" => marker })).status).to eq(500)
        wait_for_close(marker)
      end

      it "has a header value with a line break dropped, never sent as a header of its own" do
        serve(ResponseContractApps::EvilHeader, lint: false)
        response = read_response(raw_get("/"))
        expect(response.status).to eq(200)
        expect(response["x-fine"]).to eq("1")
        expect(response["x-injected"]).to be_nil
        expect(response["x-evil"]).to be_nil
        expect(wait_for_log(/response header dropped/)).to include("x-evil")
      end
    end
  end

  # :threaded mode runs any app, closures over Queues and locals included;
  # these examples hold the app with a Queue it closes over, which no
  # worker ractor could share.
  context "in :threaded mode only (apps closing over a Queue)" do
    it "sends an each body chunked, each chunk as the app produces it" do
      gate = Queue.new
      body = Object.new
      body.define_singleton_method(:each) do |&block|
        block.call("first\n")
        gate.pop
        block.call("last\n")
      end
      start_server(mode: :threaded) { |_env| [200, { "content-type" => "text/plain" }, body] }
      socket = connect_with("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      expect_chunk_while_held(socket, "first\n", rest: "last\n", release: -> { gate << :go })
    end

    it "calls body.close on the very body object the app returned" do
      closed = Queue.new
      body = ["x"]
      body.define_singleton_method(:close) { closed << :closed }
      start_server(mode: :threaded, lint: false) do |env|
        lint_env(env)
        [200, { "content-type" => "text/plain" }, body]
      end
      expect(http_get("/").body).to eq("x")
      wait_until(message: "body.close was never called") { closed.size == 1 }
    end
  end
end
