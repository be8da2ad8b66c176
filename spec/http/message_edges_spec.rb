# frozen_string_literal: true

require "json"
require "kino"

# The apps are modules, shareable, so the examples run in :threaded and
# :ractor mode alike.
module MessageEdgesApps
  # Answers with the status in the path (/status/103) as the final answer.
  module Interim
    def self.call(env)
      status = Integer(env["PATH_INFO"][%r{\A/status/(\d+)}, 1])
      headers = { "content-type" => "text/plain" }
      headers["upgrade"] = "websocket" if status == 101
      body = env["QUERY_STRING"] == "streamed" ? Enumerator.new { |y| y << "streamed" } : ["whole"]
      [status, headers, body]
    end
  end
end

# Request and response edges from a code review, through a real socket:
# chunk extensions and trailers have a budget, absolute-form targets name
# the host, a 1xx is never a final answer, an Upgrade not honoured ends the
# connection.
RSpec.describe "Message edges" do
  in_each_mode do
    def chunked_post
      "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    end

    def write_ignoring_close(socket, bytes)
      socket.write(bytes)
    rescue Errno::EPIPE, Errno::ECONNRESET
      nil # the server answered and closed before we finished
    end

    def expect_rejected(socket, status)
      read_last_response(socket, status)
      expect(server.stats[:requests_received]).to eq(0)
      expect(http_get("/").code).to eq("200")
    end

    describe "chunk extensions and trailers" do
      before { serve(HttpApps::Echo) }

      it "accept a few small extensions and trailers" do
        socket = connect_with("#{chunked_post}5;a=b;c\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n")
        response = read_response(socket)
        expect(response.status).to eq(200)
        expect(JSON.parse(response.body)).to include("rack.input" => "hello")
        expect(JSON.parse(response.body)).not_to include("HTTP_X_TRAILER")
      end

      it "answer a 20 KB chunk extension with 400 and close" do
        socket = connect
        write_ignoring_close(socket, "#{chunked_post}1;#{'e' * 20_000}\r\nx\r\n0\r\n\r\n")
        expect_rejected(socket, 400)
      end

      it "answer 20 KB of trailers with 400 and close" do
        socket = connect
        write_ignoring_close(socket, "#{chunked_post}1\r\nx\r\n0\r\nX-Trailer: #{'t' * 20_000}\r\n\r\n")
        expect_rejected(socket, 400)
      end

      {
        "a `1;` followed by megabytes of extension" => ["1;", "e"],
        "a chunk size after megabytes of leading zeros" => ["", "0"],
        "megabytes of whitespace before a trailer value" => ["1\r\nx\r\n0\r\nX-T:", " "]
      }.each do |what, (start, filler)|
        it "end #{what} with 400 and close" do
          endless(start, filler)
        end
      end

      def endless(start, filler)
        socket = connect_with("#{chunked_post}#{start}")
        writer = Thread.new do
          piece = filler * 65_536
          128.times { socket.write(piece) } # 8 MiB, unless the server stops us first
          :wrote_everything
        rescue Errno::EPIPE, Errno::ECONNRESET, IOError
          :stopped
        end
        response = read_response(socket)
        expect(response.status).to eq(400)
        expect(response["connection"]).to eq("close")
        expect(writer.join(10)).not_to be_nil
        expect(server.stats[:requests_received]).to eq(0)
        expect(http_get("/").code).to eq("200")
      end
    end

    it "takes HTTP_HOST, SERVER_NAME and SERVER_PORT from an absolute-form target, not Host" do
      serve(HttpApps::Echo)
      socket = connect_with("GET http://origin.example:8080/p?q=1 HTTP/1.1\r\nHost: other.example:9090\r\n\r\n")
      env = JSON.parse(read_response(socket).body)
      expect(env).to include("HTTP_HOST" => "origin.example:8080", "SERVER_NAME" => "origin.example",
                             "SERVER_PORT" => "8080", "PATH_INFO" => "/p", "QUERY_STRING" => "q=1")
    end

    it "closes the connection after answering an Upgrade it does not honour" do
      serve(HttpApps::Echo)
      socket = connect_with("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" \
                            "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
      response = read_last_response(socket, 200) # /after is never answered
      expect(JSON.parse(response.body)["PATH_INFO"]).to eq("/ws")
      expect(server.stats[:requests_received]).to eq(1)
    end

    [101, 103, 100].each do |status|
      %w[whole streamed].each do |kind|
        it "answers 500 for a final #{status} from the app (#{kind} body) and logs it" do
          serve(MessageEdgesApps::Interim, lint: false)
          socket = connect_with("GET /status/#{status}?#{kind} HTTP/1.1\r\nHost: x\r\n\r\n")
          response = read_response(socket)
          expect(response.status).to eq(500)
          expect(response["upgrade"]).to be_nil
          expect(response.body).not_to include(kind)
          wait_for_log(/answered with status #{status}, which is not a final status/)
          socket.write("GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
          expect(read_response(socket).status).to eq(200)
        end
      end
    end
  end
end
