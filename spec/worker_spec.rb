# frozen_string_literal: true

require "kino"

# A body that records that it was closed, and yields +chunks+ (an
# Exception among them is raised at that point of the iteration).
module WorkerSpec
  class TrackedBody
    def initialize(*chunks)
      @chunks = chunks
      @closed = false
    end

    def each
      @chunks.each do |chunk|
        raise chunk if chunk.is_a?(Exception)

        yield chunk
      end
    end

    def close
      @closed = true
    end

    def closed?
      @closed
    end
  end
end

# The Rack response contract as Kino::Worker carries it out, seen on the
# wire: every kind of body, the close promise, and what happens to apps
# that fail or answer wrongly.
RSpec.describe Kino::Worker do
  def wait_for_close(body)
    wait_until(message: "body.close was never called") { body.closed? }
  end

  describe "bodies" do
    it "sends an Array body with its content-length" do
      start_server { |_env| [200, { "content-type" => "text/plain" }, ["Hello, ", "world"]] }
      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(response["content-length"]).to eq("12")
      expect(response.chunked?).to be(false)
      expect(response.body).to eq("Hello, world")
    end

    it "sends an each body chunked, each chunk as the app produces it" do
      gate = Queue.new
      body = Object.new
      body.define_singleton_method(:each) do |&block|
        block.call("first\n")
        gate.pop
        block.call("last\n")
      end
      start_server { |_env| [200, { "content-type" => "text/plain" }, body] }
      socket = connect
      begin
        socket.write("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = read_head(socket)
        expect(response.status).to eq(200)
        expect(response.chunked?).to be(true)
        # The app is still blocked on the gate: this chunk can only be here
        # if the server sent it before the body finished.
        expect(read_chunk(socket)).to eq("first\n")
      ensure
        gate << :go
      end
      read_body(socket, response)
      expect(response.body).to eq("last\n")
      expect(response.complete?).to be(true)
    end

    it "uses the content-length an each body's app declares instead of chunking" do
      start_server do |_env|
        [200, { "content-type" => "text/plain", "content-length" => "6" }, WorkerSpec::TrackedBody.new("abc", "def")]
      end
      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket)
      expect(response.chunked?).to be(false)
      expect([response["content-length"], response.body]).to eq(%w[6 abcdef])
    end

    it "streams a Rack 3 body that responds to call, as it writes" do
      gate = Queue.new
      streamed = lambda do |stream|
        stream.write("alpha\n")
        gate.pop
        stream << "beta\n"
        stream.close
      end
      start_server { |_env| [200, { "content-type" => "text/plain" }, streamed] }
      socket = connect
      begin
        socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = read_head(socket)
        expect(response.chunked?).to be(true)
        expect(read_chunk(socket)).to eq("alpha\n")
      ensure
        gate << :go
      end
      read_body(socket, response)
      expect(response.body).to eq("beta\n")
      expect(response.complete?).to be(true)
    end

    it "ends a Rack 3 streaming body properly even if the app does not close the stream" do
      start_server { |_env| [200, { "content-type" => "text/plain" }, ->(stream) { stream.write("done") }] }
      response = http_get("/")
      expect(response.body).to eq("done")
    end

    it "streams to an HTTP/1.0 client without chunked coding, ending the body with the close" do
      start_server { |_env| [200, { "content-type" => "text/plain" }, WorkerSpec::TrackedBody.new("one ", "two ", "three")] }
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
      start_server do |_env|
        [200, { "content-type" => "text/plain", "set-cookie" => ["a=1; path=/", "b=2; path=/"] }, ["ok"]]
      end
      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket)
      expect(response.all("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
      expect(http_get("/").get_fields("set-cookie")).to eq(["a=1; path=/", "b=2; path=/"])
    end

    [204, 304].each do |status|
      it "sends no body and no body framing for #{status}, even if the app gives one" do
        start_server(lint: false) do |env|
          lint_env(env)
          if env["PATH_INFO"] == "/empty"
            [status, { "x-status" => status.to_s }, ["this must not be sent"]]
          else
            [200, { "content-type" => "text/plain" }, ["after"]]
          end
        end
        socket = connect
        socket.write("GET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
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
      start_server(lint: false) do |env|
        lint_env(env)
        [200, { "content-type" => "text/plain" }, ["twelve bytes"]]
      end
      socket = connect
      socket.write("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket, head: true)
      expect(response["content-length"]).to eq("12")
      expect(read_to_eof(socket)).to eq("")
    end
  end

  describe "body.close" do
    # Without Rack::Lint, whose to_ary closes the body itself (as the SPEC
    # asks of bodies with to_ary), so only the server can close this one.
    it "is called after an Array-like body is sent" do
      body = WorkerSpec::TrackedBody.new("x")
      def body.to_ary = ["x"]
      start_server(lint: false) do |env|
        lint_env(env)
        [200, { "content-type" => "text/plain" }, body]
      end
      expect(http_get("/").body).to eq("x")
      wait_for_close(body)
    end

    it "is called after an each body is sent" do
      body = WorkerSpec::TrackedBody.new("a", "b")
      start_server { |_env| [200, { "content-type" => "text/plain" }, body] }
      expect(http_get("/").body).to eq("ab")
      wait_for_close(body)
    end

    it "is called when the body raises mid-way, and the client sees a cut-off body, not a clean end" do
      body = WorkerSpec::TrackedBody.new("part one\n", RuntimeError.new("body failed midway"), "never\n")
      start_server do |env|
        [200, { "content-type" => "text/plain" }, env["PATH_INFO"] == "/cut" ? body : ["fine"]]
      end
      socket = connect
      socket.write("GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(response.chunked?).to be(true)
      expect(response.body).to eq("part one\n")
      expect(response.complete?).to be(false)
      expect(closed_by_peer?(socket)).to be(true)
      wait_for_close(body)
      expect(http_get("/again").body).to eq("fine")
    end
  end

  describe "an app that raises" do
    let(:app) do
      lambda do |env|
        raise ArgumentError, "kaboom in the app" if env["PATH_INFO"] == "/boom"

        [200, { "content-type" => "text/plain" }, ["fine\n"]]
      end
    end

    it "gets a 500, and the same connection goes on serving" do
      start_server(app)
      http do |h|
        failed = h.get("/boom")
        expect(failed.code).to eq("500")
        expect(failed.body).to eq("Internal Server Error\n")
        expect(h.get("/next").body).to eq("fine\n")
      end
      expect(server.stats[:connections_accepted]).to eq(1)
    end

    it "has the error and its backtrace written to the server's log" do
      start_server(app)
      expect(http_get("/boom").code).to eq("500")
      log = wait_for_log(/kaboom in the app/, timeout: 2)
      expect(log).to include("GET /boom", "ArgumentError", "kaboom in the app")
      expect(log).to match(%r{^\s+\S*spec/worker_spec\.rb:\d+})
    end
  end

  describe "an answer that breaks the Rack contract" do
    {
      "a String status" => ["200", { "content-type" => "text/plain" }, ["x"]],
      "headers that are not a Hash" => [200, [%w[content-type text/plain]], ["x"]],
      "a nil body" => [200, { "content-type" => "text/plain" }, nil],
      "an Integer header value" => [200, { "content-type" => "text/plain", "x-count" => 3 }, ["x"]]
    }.each do |what, bad_response|
      it "with #{what} becomes a 500, and the server goes on serving" do
        start_server(lint: false) do |env|
          lint_env(env)
          env["PATH_INFO"] == "/bad" ? bad_response.dup : [200, { "content-type" => "text/plain" }, ["good"]]
        end
        expect(http_get("/bad").code).to eq("500")
        response = http_get("/good")
        expect([response.code, response.body]).to eq(%w[200 good])
      end
    end

    it "still has its body closed" do
      body = WorkerSpec::TrackedBody.new("x")
      start_server(lint: false) do |env|
        lint_env(env)
        ["200", {}, body]
      end
      expect(http_get("/").code).to eq("500")
      wait_for_close(body)
    end

    it "has a header value with a line break dropped, never sent as a header of its own" do
      start_server(lint: false) do |env|
        lint_env(env)
        [200, { "content-type" => "text/plain", "x-evil" => "a\r\nx-injected: yes", "x-fine" => "1" }, ["ok"]]
      end
      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(response["x-fine"]).to eq("1")
      expect(response["x-injected"]).to be_nil
      expect(response["x-evil"]).to be_nil
      expect(wait_for_log(/response header dropped/)).to include("x-evil")
    end
  end
end
