# frozen_string_literal: true

require "json"
require "time"
require "kino"

# The apps, shareable (modules with self.call) so that the same examples run
# in :threaded and :ractor mode.
module StrictParsingApps
  # Breaks the response rules on purpose, by path. Run without Rack::Lint.
  module Responder
    def self.call(env)
      ServerHelper.lint_env(env)
      case env["PATH_INFO"]
      when "/crlf"
        [200, { "content-type" => "text/plain", "x-before" => "1", "x-evil" => "a\r\nset-cookie: evil=1",
                "x-lf" => "a\nb", "x-nul" => "a\0b", "x-after" => "2" }, ["intact"]]
      when "/204" then [204, { "x-s" => "1" }, ["must not be sent"]]
      when "/304" then [304, { "x-s" => "1" }, ["must not be sent"]]
      when "/404" then [404, { "content-type" => "text/plain" }, ["missing"]]
      else [200, { "content-type" => "text/plain" }, ["body"]]
      end
    end
  end
end

# Request framing and header rules (RFC 9110 / RFC 9112) as a raw client
# sees them: every example writes exact bytes on a fresh socket to a real
# server. A rejection must be an error status with `connection: close`,
# must never reach the app, and must end with the server closing the
# connection; an accepted request must reach the env as checked below. In
# both cases the server must go on answering ordinary requests afterwards.
# Several rules come from Puma's CVE history (request smuggling through
# CL/TE confusion, chunk-size overflow, bare-LF and obs-fold tricks,
# underscore headers posing as dashed ones, trailers overriding headers).
#
# Where the RFC allows more than one answer (reject or accept, 400 or 505),
# the example pins what Kino does and the comment names the rule.
#
# Every example runs in :threaded and in :ractor mode.
RSpec.describe "Strict request parsing" do
  in_each_mode do |_mode|
    let(:echo) { HttpApps::Echo }

    # Requests the server has handed towards the app so far. A complete
    # head is counted as it enters the request queue, the only way to the
    # app in either mode, before any worker takes it: so a request that
    # reached the app is counted by the time its connection answers or
    # closes. (`served` would not do: it is counted after the last byte of
    # a response is written, possibly after the client has read it.)
    def dispatched
      server.stats[:requests_received]
    end

    def next_request
      "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    end

    def send_raw(socket, bytes)
      socket.write(bytes.b)
    rescue Errno::EPIPE, Errno::ECONNRESET
      nil # the server gave up on the request before we finished sending it
    end

    # Sends +bytes+, expects one rejection with a status among +statuses+,
    # then the close, then a healthy server. Returns the response.
    def expect_rejection(bytes, *statuses)
      already = dispatched
      socket = connect
      send_raw(socket, bytes)
      response = read_response(socket)
      expect(statuses).to include(response.status), "got #{response.status} #{response.body.inspect}"
      expect(response["connection"]).to eq("close")
      expect(response.complete?).to be(true)
      expect(closed_by_peer?(socket)).to be(true)
      reached = dispatched - already
      expect(reached).to eq(0), "#{reached} request(s) went on to the app that should not have"
      expect(http_get("/").code).to eq("200")
      response
    end

    # Sends +bytes+ and reads one response (and the env it echoes). With
    # `keep_alive: true` the connection must still serve a second request.
    def exchange(bytes, keep_alive: true)
      socket = connect
      send_raw(socket, bytes)
      response = read_response(socket)
      expect(response.status).to eq(200), "got #{response.status} #{response.body.inspect}"
      env = JSON.parse(response.body)
      if keep_alive
        expect(response["connection"]).not_to eq("close")
        send_raw(socket, next_request)
        following = read_response(socket)
        expect(following.status).to eq(200)
        expect(JSON.parse(following.body)["PATH_INFO"]).to eq("/next")
      end
      expect(http_get("/").code).to eq("200")
      [env, response, socket]
    end

    def post(headers, body = "")
      "POST /upload HTTP/1.1\r\nHost: x\r\n#{headers}\r\n#{body}"
    end

    def get(headers = "", target: "/probe", version: "HTTP/1.1")
      "GET #{target} #{version}\r\n#{headers}\r\n"
    end

    describe "message framing (RFC 9112 section 6)" do
      before { serve(echo) }

      # Each carries a second request after it: a server that framed the
      # first one wrongly would answer the smuggled one.
      smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
      {
        "Content-Length together with Transfer-Encoding" =>
          "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding together with Content-Length" =>
          "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "two differing Content-Lengths" => "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        # 6.3: identical duplicates MAY be accepted; rejecting them is allowed too.
        "two identical Content-Lengths" => "Content-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        "a Content-Length list" => "Content-Length: 2, 2\r\n\r\nab",
        "Content-Length +5" => "Content-Length: +5\r\n\r\nabcde",
        "Content-Length -1" => "Content-Length: -1\r\n\r\nabcde",
        "Content-Length 1a" => "Content-Length: 1a\r\n\r\nabcde",
        "Content-Length with inner space" => "Content-Length: 5 5\r\n\r\nabcde",
        "Content-Length overflowing 64 bits" => "Content-Length: 99999999999999999999999\r\n\r\n",
        "Transfer-Encoding gzip (not chunked last)" => "Transfer-Encoding: gzip\r\n\r\nabc",
        "Transfer-Encoding chunked, gzip" => "Transfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        # llhttp accepts codings before a final chunked; we would hand the
        # app a body still gzip-coded, so Kino refuses them itself.
        "Transfer-Encoding gzip, chunked" => "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding identity" => "Transfer-Encoding: identity\r\n\r\nabc",
        "chunked applied twice" => "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "an invalid chunk size (zz)" => "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "an overflowing chunk size" =>
          "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "chunk data not followed by CRLF" => "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        "a control character in a chunk extension" =>
          "Transfer-Encoding: chunked\r\n\r\n5;\x01\r\nhello\r\n0\r\n\r\n",
        # 2.2: a bare LF MAY be taken as a line end; strict mode rejects it.
        "bare LF in the chunk lines" => "Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n"
      }.each do |what, rest|
        unimplemented = ["Transfer-Encoding gzip", "Transfer-Encoding chunked,", "Transfer-Encoding identity"]
        statuses = what.start_with?(*unimplemented) ? [400, 501] : [400]
        it "rejects #{what}" do
          expect_rejection("POST /probe HTTP/1.1\r\nHost: x\r\n#{rest}#{smuggled}", *statuses)
        end
      end

      it "accepts Content-Length with leading whitespace (OWS is not part of the value)" do
        env, = exchange(post("Content-Length:  5\r\n", "abcde"))
        expect(env).to include("CONTENT_LENGTH" => "5", "rack.input" => "abcde")
      end

      # What the app reads, and what the env must not have, of a chunked body.
      {
        "chunk extensions and drops them" =>
          ["chunked", "5;ext=1\r\nhello\r\n6;a=b;c=\"d\"\r\n world\r\n0\r\n\r\n", "hello world", "CONTENT_LENGTH"],
        "the chunked coding in any letter case" => ["Chunked", "3\r\nabc\r\n0\r\n\r\n", "abc", nil],
        "trailers, which never reach the env" =>
          ["chunked", "5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n", "hello", "HTTP_X_TRAILER"]
      }.each do |what, (coding, chunks, body, absent)|
        it "accepts #{what}" do
          env, = exchange(post("Transfer-Encoding: #{coding}\r\n", chunks))
          expect(env["rack.input"]).to eq(body)
          expect(env).not_to have_key(absent) if absent
        end
      end

      # RFC 9110 6.5.1: framing fields are not allowed in trailers. llhttp
      # rejects the message; dropping the field would be fine too. Either
      # way it must not become CONTENT_LENGTH.
      it "never lets a trailer Content-Length reach CONTENT_LENGTH" do
        response = expect_rejection(post("Transfer-Encoding: chunked\r\n",
                                         "5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n"), 400)
        expect(response.body).not_to include("99")
      end

      # 6.1: a Transfer-Encoding on HTTP/1.0 means faulty framing; the server
      # may process the message but must close the connection afterwards.
      it "answers an HTTP/1.0 chunked request at most once, then closes" do
        already = dispatched
        socket = connect
        send_raw(socket, "POST /probe HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" \
                         "GET /smuggled HTTP/1.0\r\n\r\n")
        response = read_response(socket)
        expect([200, 400]).to include(response.status)
        expect(response["connection"]).to eq("close")
        expect(closed_by_peer?(socket)).to be(true)
        expect(dispatched - already).to be <= 1
        expect(http_get("/").code).to eq("200")
      end
    end

    describe "header fields (RFC 9112 section 5)" do
      before { serve(echo) }

      {
        "whitespace between a header name and the colon" => "X-Foo : 1\r\n",
        "an obs-fold continuation line" => "X-Foo: 1\r\n  continued\r\n",
        "a NUL in a header value" => "X-Foo: a\0b\r\n",
        "a control character in a header value" => "X-Foo: a\x01b\r\n",
        "DEL in a header value" => "X-Foo: a\x7Fb\r\n",
        "a NUL in a header name" => "X-F\0oo: ab\r\n",
        "a control character in a header name" => "X-F\x01oo: ab\r\n",
        "two Host headers" => "Host: y\r\n",
        "a bare LF ending a header line" => "X-A: 1\nX-B: 2\r\n"
      }.each do |what, field|
        it "rejects #{what}" do
          expect_rejection(get("Host: x\r\n#{field}"), 400)
        end
      end

      # 2.2: whitespace before the first field MUST be rejected or the line ignored.
      it "rejects whitespace between the request line and the first header" do
        expect_rejection(get(" Host: x\r\n"), 400)
      end

      it "rejects an HTTP/1.1 request without Host" do
        expect_rejection(get, 400)
      end

      ["a b", "a/b", "a@b", "x:8a", "x:123456", "[::1"].each do |host|
        it "rejects Host #{host.inspect}" do
          expect_rejection(get("Host: #{host}\r\n"), 400)
        end
      end

      it "strips optional whitespace around header values" do
        env, = exchange(get("Host: x\r\nX-Foo: \t  v a l \t \r\n"))
        expect(env["HTTP_X_FOO"]).to eq("v a l")
      end

      # Puma CVE-2024-45614: X_Forwarded_For must not pose as X-Forwarded-For.
      [
        ["after", "X-Forwarded-For: a\r\nX_Forwarded_For: b\r\n"],
        ["before", "X_Forwarded_For: b\r\nX-Forwarded-For: a\r\n"]
      ].each do |order, fields|
        it "never lets an underscore header override its dashed twin (underscore #{order})" do
          env, = exchange(get("Host: x\r\n#{fields}"))
          expect(env["HTTP_X_FORWARDED_FOR"]).to eq("a")
        end
      end

      it "drops an underscore header that has no dashed twin" do
        env, = exchange(get("Host: x\r\nX_Forwarded_For: b\r\n"))
        expect(env).not_to have_key("HTTP_X_FORWARDED_FOR")
      end
    end

    describe "request line (RFC 9112 section 3)" do
      before { serve(echo) }

      it "rejects a space inside the request target" do
        expect_rejection("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400)
      end

      it "rejects a target that is neither origin-, absolute- nor asterisk-form" do
        expect_rejection(get("Host: x\r\n", target: "probe"), 400)
      end

      it "rejects an absolute-form target with a scheme other than http(s)" do
        expect_rejection(get("Host: x\r\n", target: "ftp://x/probe"), 400)
      end

      {
        "HTTP/1.x" => [400],
        "HTTP/11.1" => [400],
        # Well formed but not spoken here: 505 (RFC 9110 15.6.6). 2.3
        # would let 1.2 be served as 1.1; Kino answers 505 instead.
        "HTTP/2.0" => [505],
        "HTTP/1.2" => [505],
        "HTTP/3.0" => [505],
        "HTTP/0.9" => [505]
      }.each do |version, statuses|
        it "rejects the version #{version}" do
          expect_rejection(get("Host: x\r\n", version: version), *statuses)
        end
      end

      it "rejects the HTTP/2 connection preface on an HTTP/1 port" do
        expect_rejection("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, 505)
      end

      it "rejects a TLS ClientHello on the plain port" do
        hello = [0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03].pack("C*") +
                Random.new(1).bytes(32) + "\x00\x00\x02\x13\x01\x01\x00".b
        expect_rejection(hello, 400)
      end

      # 2.2: a recipient MAY accept a bare LF as a line terminator; strict
      # llhttp does not, which is allowed.
      it "rejects bare LF line endings" do
        expect_rejection("GET /probe HTTP/1.1\nHost: x\n\n", 400)
      end

      it "rejects CONNECT" do
        expect_rejection("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, 400)
      end

      it "takes the authority of an absolute-form target over Host" do
        env, = exchange(get("Host: x\r\n", target: "http://other.example:8080/p?q=1"))
        expect(env).to include("PATH_INFO" => "/p", "QUERY_STRING" => "q=1",
                               "SERVER_NAME" => "other.example", "SERVER_PORT" => "8080")
      end
    end

    describe "accepted requests and connection handling" do
      before { serve(echo) }

      it "answers HTTP/1.0 without keep-alive and closes" do
        env, response, socket = exchange("GET /probe HTTP/1.0\r\n\r\n", keep_alive: false)
        expect(env["SERVER_PROTOCOL"]).to eq("HTTP/1.0")
        expect(response["connection"]).to eq("close")
        expect(closed_by_peer?(socket)).to be(true)
      end

      it "keeps an HTTP/1.0 connection that asks for keep-alive" do
        env, response, socket = exchange("GET /probe HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", keep_alive: false)
        expect(env["SERVER_PROTOCOL"]).to eq("HTTP/1.0")
        expect(response["connection"]).to eq("keep-alive")
        send_raw(socket, "GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        expect(JSON.parse(read_response(socket).body)["PATH_INFO"]).to eq("/again")
      end

      it "answers Expect: 100-continue with 100, then the final response" do
        socket = connect
        send_raw(socket, post("Expect: 100-continue\r\nContent-Length: 5\r\n"))
        final = send_after_continue(socket, "hello")
        expect(final.status).to eq(200)
        expect(JSON.parse(final.body)["rack.input"]).to eq("hello")
        expect(http_get("/").code).to eq("200")
      end

      it "answers an Upgrade: websocket request as a plain request (200, not 101), then closes" do
        env, response = exchange(get("Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" \
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"),
                                 keep_alive: false)
        expect(response["upgrade"]).to be_nil
        expect(response["connection"]).to eq("close") # what the client sends next may not be HTTP/1.1
        expect(env["HTTP_UPGRADE"]).to eq("websocket")
      end

      it "ignores bytes after a request with Connection: close" do
        already = dispatched
        socket = connect
        closing = get("Host: x\r\nConnection: close\r\n")
        send_raw(socket, "#{closing}GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(socket)
        expect(response.status).to eq(200)
        expect(response["connection"]).to eq("close")
        expect(JSON.parse(response.body)["PATH_INFO"]).to eq("/probe")
        expect(closed_by_peer?(socket)).to be(true)
        expect(dispatched - already).to eq(1)
        expect(http_get("/").code).to eq("200")
      end
    end

    describe "limits" do
      before { serve(echo, max_uri_size: 64, max_header_size: 1024, max_headers: 5, max_body_size: 16) }

      it "answers 414 to a request target longer than max_uri_size" do
        expect_rejection(get("Host: x\r\n", target: "/#{'a' * 100}"), 414)
      end

      it "answers 431 to a head larger than max_header_size" do
        expect_rejection(get("Host: x\r\nX-Big: #{'a' * 1100}\r\n"), 431)
      end

      it "answers 431 to more than max_headers fields" do
        expect_rejection(get("Host: x\r\n#{(1..5).map { |i| "X-H#{i}: 1\r\n" }.join}"), 431)
      end

      it "accepts exactly max_headers fields" do
        env, = exchange(get("Host: x\r\n#{(1..4).map { |i| "X-H#{i}: 1\r\n" }.join}"))
        expect(env["HTTP_X_H4"]).to eq("1")
      end

      it "answers 413 to a Content-Length over max_body_size" do
        expect_rejection(post("Content-Length: 17\r\n", "a" * 17), 413)
      end

      it "answers 413 to a chunked body over max_body_size" do
        expect_rejection(post("Transfer-Encoding: chunked\r\n", "9\r\n#{'a' * 9}\r\n8\r\n#{'b' * 8}\r\n0\r\n\r\n"), 413)
      end

      it "accepts a body of exactly max_body_size" do
        env, = exchange(post("Content-Length: 16\r\n", "a" * 16))
        expect(env["rack.input"]).to eq("a" * 16)
      end
    end

    describe "the response side" do
      before { serve(StrictParsingApps::Responder, lint: false) }

      # Reads one response to +request+ and checks, with a second request on
      # the same connection, that nothing else (a stray body) followed it.
      def answer(request, head: false)
        socket = connect
        send_raw(socket, request)
        response = read_response(socket, head: head)
        send_raw(socket, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        following = read_response(socket)
        expect(following.status).to eq(200)
        expect(following.body).to eq("body")
        expect(http_get("/").code).to eq("200")
        response
      end

      it "drops an app header value with CR or NUL, splits one with LF only, keeps the rest intact" do
        response = answer(get("Host: x\r\n", target: "/crlf"))
        expect(response.status).to eq(200)
        expect(response.header_lines.map(&:first)).not_to include("x-evil", "x-nul", "set-cookie")
        # Rack 2's "\n"-joined values are one field per line, as with Puma.
        expect(response.all("x-lf")).to eq(%w[a b])
        expect(response.header_lines.map(&:first)).not_to include("b")
        expect(response).to have_attributes(body: "intact")
        expect(response["x-before"]).to eq("1")
        expect(response["x-after"]).to eq("2")
        expect(response["content-length"]).to eq("6")
      end

      it "sends no body with HEAD" do
        response = answer("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", head: true)
        expect(response.status).to eq(200)
      end

      %w[204 304].each do |status|
        it "sends no body (and no framing claiming one) with #{status}" do
          response = answer(get("Host: x\r\n", target: "/#{status}"))
          expect(response.status).to eq(Integer(status))
          expect(response["transfer-encoding"]).to be_nil
          expect(response["x-s"]).to eq("1")
        end
      end

      it "puts a current date header on every response" do
        responses = [
          answer(get("Host: x\r\n")),
          answer(get("Host: x\r\n", target: "/204")),
          answer(get("Host: x\r\n", target: "/304")),
          answer(get("Host: x\r\n", target: "/404")),
          answer("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", head: true),
          expect_rejection(get, 400), # no Host
          expect_rejection(get("Host: x\r\n", version: "HTTP/2.0"), 505)
        ]
        responses.each do |response|
          expect(response.all("date").size).to eq(1), "#{response.status} has #{response.all('date').inspect}"
          expect((Time.httpdate(response["date"]) - Time.now).abs).to be < 60
        end
      end
    end
  end
end
