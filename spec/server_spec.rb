# frozen_string_literal: true

require "json"
require "time"
require "kino"

# The apps the server's examples serve, shareable so that they run in both
# modes (spec/support/http_apps.rb says what that asks of an app).
module ServerApps
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

  # /hold waits at the X-Gate file (HttpApps::Gate); anything else
  # answers its path.
  module Gated
    def self.call(env)
      HttpApps::Gate.wait(env["HTTP_X_GATE"]) if env["PATH_INFO"] == "/hold"
      [200, HttpApps.text, ["#{env['PATH_INFO']}\n"]]
    end
  end

  module HeadAware
    def self.call(env)
      body = env["REQUEST_METHOD"] == "HEAD" ? [] : ["hello world"]
      [200, { "content-type" => "text/plain", "content-length" => "11" }, body]
    end
  end
end

# HTTP behaviour of Kino::Server, seen from real clients on a real socket:
# where requests are served, the Rack env, HEAD, persistent connections,
# malformed requests, the response head and shutdown, in both modes.
RSpec.describe Kino::Server do
  in_each_mode do |mode|
    it "serves from a worker #{mode == :ractor ? 'ractor' : 'thread on the main ractor'}" do
      serve(ServerApps::WhereAmI, workers: 2, threads: 1)
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
        socket = connect_with("GET / HTTP/1.0\r\n\r\n")
        env = env_of(read_response(socket))
        expect(env["SERVER_NAME"]).to eq("localhost")
        expect(env["SERVER_PORT"]).to eq(server.port.to_s)
      end

      it "joins repeated request headers with \", \"" do
        serve(HttpApps::Echo)
        socket = connect_with("GET / HTTP/1.1\r\nHost: x\r\nX-Multi: one\r\nX-Multi: two\r\nx-multi: three\r\n" \
                              "Connection: close\r\n\r\n")
        expect(env_of(read_response(socket))["HTTP_X_MULTI"]).to eq("one, two, three")
      end

      it "drops a header spelled with underscores, which must not pose as its dashed twin" do
        serve(HttpApps::Echo)
        [
          "X-Forwarded-For: 10.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n",
          "X_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\n"
        ].each do |headers|
          socket = connect_with("GET / HTTP/1.1\r\nHost: x\r\n#{headers}Connection: close\r\n\r\n")
          expect(env_of(read_response(socket))["HTTP_X_FORWARDED_FOR"]).to eq("10.0.0.1")
        end

        socket = connect_with("GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n")
        env = env_of(read_response(socket))
        expect(env.keys.grep(/FORWARDED/)).to eq([])
        expect(env.values).not_to include("6.6.6.6")
      end
    end

    describe "HEAD" do
      it "sends the headers, content-length included, and no body bytes" do
        serve(ServerApps::HeadAware)
        socket = raw_get("/thing", method: "HEAD")
        response = read_response(socket, head: true)
        expect(response.status).to eq(200)
        expect(response["content-length"]).to eq("11")
        expect(response["content-type"]).to eq("text/plain")
        expect(read_to_eof(socket)).to eq("")
      end

      it "keeps the connection in step: the next pipelined response follows the head directly" do
        serve(ServerApps::Path)
        socket = connect_with("HEAD /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_response(socket, head: true)
        expect(head.status).to eq(200)
        following = read_response(socket)
        expect([following.status, following.body]).to eq([200, "/second\n"])
      end
    end

    describe "persistent connections" do
      it "serves several requests on one HTTP/1.1 connection" do
        serve(ServerApps::Path)
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
        serve(ServerApps::Path)
        response = read_last_response(raw_get("/bye"), 200)
        expect(response.body).to eq("/bye\n")
      end

      it "closes an HTTP/1.0 connection without keep-alive after the response" do
        serve(HttpApps::Echo)
        socket = connect_with("GET /old HTTP/1.0\r\n\r\n")
        response = read_last_response(socket, 200)
        expect(env_of(response)).to include("SERVER_PROTOCOL" => "HTTP/1.0", "PATH_INFO" => "/old",
                                            "SERVER_PORT" => server.port.to_s)
      end

      it "keeps an HTTP/1.0 connection open when the client sends Connection: keep-alive" do
        serve(ServerApps::Path)
        socket = connect_with("GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = read_response(socket)
        expect([first.body, first["connection"]]).to eq(["/one\n", "keep-alive"])
        socket.write("GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        expect(read_response(socket).body).to eq("/two\n")
        expect(server.stats[:connections_accepted]).to eq(1)
      end

      it "answers pipelined requests, written in one go, in order" do
        serve(ServerApps::Path)
        socket = connect_with("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" \
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
        serve(ServerApps::Path)
        socket = connect_with("GARBAGE\r\n\r\n")
        read_last_response(socket, 400)
        expect(server.stats[:parse_errors]).to eq(1)

        expect(http_get("/after").body).to eq("/after\n")
      end

      it "refuses an HTTP/1.1 request without Host" do
        serve(ServerApps::Path)
        socket = connect_with("GET / HTTP/1.1\r\n\r\n")
        expect(read_response(socket).status).to eq(400)
        expect(closed_by_peer?(socket)).to be(true)
      end
    end

    describe "the response head" do
      it "carries a date header and a reason phrase" do
        serve(ServerApps::Path)
        response = http_get("/")
        expect(response.message).to eq("OK")
        expect(Time.httpdate(response["date"])).to be_within(60).of(Time.now)
      end
    end

    describe "#shutdown" do
      it "finishes a request in flight, then refuses new connections" do
        serve(ServerApps::Path)
        socket = connect_with("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(message: "the request never reached the app") { requests_in_app == 1 }
        expect(server.shutdown(5)).to eq(0)
        response = read_response(socket)
        expect([response.status, response.body]).to eq([200, "/slow\n"])
        expect { connect(server.port) }.to raise_error(SystemCallError)
      end

      it "stops at once when the thread shutting down is interrupted, and lets the server go" do
        serve(ServerApps::Gated)
        socket = connect_with("GET /hold HTTP/1.1\r\nHost: x\r\nX-Gate: #{signal_path('never')}\r\n\r\n")
        wait_until(message: "the request never reached the app") { requests_in_app == 1 }
        id = server.server_id
        stopping = Thread.new { server.shutdown(30) }
        wait_until(message: "the drain never began") { Kino::Native.server_stats(id)[:state] == :draining }
        began = monotonic
        stopping.raise(Interrupt, "second signal")
        expect { stopping.value }.to raise_error(Interrupt, "second signal")
        expect(monotonic - began).to be < 10
        # Released on the way out: the id names no server any more.
        expect { Kino::Native.server_stats(id) }.to raise_error(Kino::Error, /no server/)
        expect(socket.read).not_to start_with("HTTP/1.1 200")
      end
    end
  end

  it "refuses processes above 1 when embedded: forking is kino's" do
    embedded = described_class.new(ServerApps::Path, processes: 2)
    expect { embedded.start }.to raise_error(Kino::ConfigError, /processes 2: Kino::Server serves in one process/)
    expect(embedded.running?).to be(false)
  end
end
