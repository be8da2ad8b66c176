# frozen_string_literal: true

require "json"
require "time"
require "kino"

# HTTP behaviour of Kino::Server, seen from real clients on a real socket.
RSpec.describe Kino::Server do
  # Answers with the String-valued part of the env as JSON, and the request
  # body it read from rack.input.
  let(:echo_app) do
    lambda do |env|
      strings = env.select { |_k, v| v.is_a?(String) }
      strings["rack.url_scheme"] = env["rack.url_scheme"]
      strings["rack.input"] = env["rack.input"].read
      body = JSON.generate(strings)
      [200, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
    end
  end

  # Answers with the path, so responses can be told apart.
  let(:path_app) do
    lambda do |env|
      Kino.sleep(0.2) if env["PATH_INFO"] == "/slow"
      [200, { "content-type" => "text/plain" }, ["#{env["PATH_INFO"]}\n"]]
    end
  end

  def env_of(response)
    JSON.parse(response.body)
  end

  describe "the Rack env of a GET" do
    it "carries the path, query, server name and port from Host, protocol, peer and headers" do
      start_server(echo_app)
      response = http_get("/some/path?a=1&b=two", { "Host" => "example.test:8080", "X-Custom-Thing" => "yes",
                                                    "Accept" => "text/plain" })
      expect(response.code).to eq("200")
      env = env_of(response)
      expect(env).to include(
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
      start_server(echo_app)
      env = env_of(http_get("/"))
      expect(env["PATH_INFO"]).to eq("/")
      expect(env["QUERY_STRING"]).to eq("")
      expect(env).not_to have_key("CONTENT_LENGTH")
      expect(env["rack.input"]).to eq("")
    end

    it "uses the listening port as SERVER_PORT when Host has none" do
      start_server(echo_app)
      env = env_of(http_get("/", { "Host" => "example.test" }))
      expect(env["SERVER_NAME"]).to eq("example.test")
      expect(env["SERVER_PORT"]).to eq(server.port.to_s)
    end

    it "joins repeated request headers with \", \"" do
      start_server(echo_app)
      socket = connect
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Multi: one\r\nX-Multi: two\r\nx-multi: three\r\n" \
                   "Connection: close\r\n\r\n")
      env = env_of(read_response(socket))
      expect(env["HTTP_X_MULTI"]).to eq("one, two, three")
    end

    it "drops a header spelled with underscores, which must not pose as its dashed twin" do
      start_server(echo_app)
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
      start_server do |env|
        body = env["REQUEST_METHOD"] == "HEAD" ? [] : ["hello world"]
        [200, { "content-type" => "text/plain", "content-length" => "11" }, body]
      end
      socket = connect
      socket.write("HEAD /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket, head: true)
      expect(response.status).to eq(200)
      expect(response["content-length"]).to eq("11")
      expect(response["content-type"]).to eq("text/plain")
      expect(read_to_eof(socket)).to eq("")
    end

    it "keeps the connection in step: the next pipelined response follows the head directly" do
      start_server(path_app)
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
      start_server(echo_app)
      response = http { |h| h.post("/form", "name=kino&kind=server", { "Content-Type" => "application/x-www-form-urlencoded" }) }
      env = env_of(response)
      expect(env).to include("REQUEST_METHOD" => "POST", "CONTENT_LENGTH" => "21",
                             "CONTENT_TYPE" => "application/x-www-form-urlencoded",
                             "rack.input" => "name=kino&kind=server")
    end

    it "reads a body larger than one socket read" do
      start_server do |env|
        data = env["rack.input"].read
        [200, { "content-type" => "text/plain" }, ["#{data.bytesize} #{data.encoding} #{data.count("x")}"]]
      end
      payload = "x" * 300_000
      response = http { |h| h.post("/", payload, { "Content-Type" => "application/octet-stream" }) }
      expect(response.body).to eq("300000 ASCII-8BIT 300000")
    end

    it "decodes a chunked body, and keeps trailers out of the env" do
      start_server(echo_app)
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
      start_server(echo_app)
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
      start_server(path_app)
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
      start_server(path_app)
      socket = connect
      socket.write("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      response = read_response(socket)
      expect([response.body, response["connection"]]).to eq(["/bye\n", "close"])
      expect(closed_by_peer?(socket)).to be(true)
    end

    it "closes an HTTP/1.0 connection without keep-alive after the response" do
      start_server(echo_app)
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
      start_server(path_app)
      socket = connect
      socket.write("GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      first = read_response(socket)
      expect([first.body, first["connection"]]).to eq(["/one\n", "keep-alive"])
      socket.write("GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      second = read_response(socket)
      expect(second.body).to eq("/two\n")
      expect(server.stats[:connections_accepted]).to eq(1)
    end

    it "answers pipelined requests, written in one go, in order" do
      start_server(path_app)
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
      start_server(path_app)
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
      start_server(path_app)
      socket = connect
      socket.write("GET / HTTP/1.1\r\n\r\n")
      response = read_response(socket)
      expect(response.status).to eq(400)
      expect(closed_by_peer?(socket)).to be(true)
    end
  end

  describe "the response head" do
    it "carries a date header and a reason phrase" do
      start_server(path_app)
      response = http_get("/")
      expect(response.message).to eq("OK")
      expect(Time.httpdate(response["date"])).to be_within(60).of(Time.now)
    end
  end

  describe "Kino.sleep" do
    it "sleeps for the time asked inside an app" do
      start_server do |_env|
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        Kino.sleep(0.2)
        elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
        [200, { "content-type" => "text/plain" }, [elapsed.to_s]]
      end
      elapsed = Float(http_get("/").body)
      expect(elapsed).to be >= 0.19
      expect(elapsed).to be < 2.0
    end
  end

  describe "#shutdown" do
    it "finishes a request in flight, then refuses new connections" do
      start_server(path_app)
      socket = connect
      socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
      wait_until(message: "the request never reached the app") { server.stats[:in_flight] == 1 }
      expect(server.shutdown(5)).to eq(0)
      response = read_response(socket)
      expect([response.status, response.body]).to eq([200, "/slow\n"])
      expect { connect(server.port) }.to raise_error(SystemCallError)
    end
  end
end
