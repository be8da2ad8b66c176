# frozen_string_literal: true

require "json"
require "kino"
require "pty"
require "time"

# log_requests: the native access log, read off the stdout of a real `kino`
# in both modes. One line per request, for what the app answered and for
# what the server answered itself (413, 431, 504 here), plain text by
# default and JSON lines with `log_format :json`; nothing at all when off,
# and tinted only on a terminal.
module AccessLogLines
  # A line of the text format, its fields named.
  TEXT = /
    ^(?<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\s(?<peer>\S+)\s
    "(?<method>\S+)\s(?<target>\S+)\s(?<protocol>\S+)"\s(?<status>\d{3})\s(?<bytes>\d+)\s
    (?<duration>\d+\.\d{3})ms\swait=(?<wait>-|\d+\.\d{3}ms)\sworker=(?<worker>-|\d+)$
  /x
end

RSpec.describe "The access log" do
  include_context "in a fresh directory"

  # Starts `kino` on hello.ru (or +rackup+) with a kino.rb of +config+.
  def start_kino(config, mode:, rackup: "spec/fixtures/hello.ru", env: {})
    path = write("kino.rb", "workers 1\nthreads 1\n#{config}\n")
    @port = free_port
    spawn_kino("-C", path, "-m", mode.to_s, rackup, port: @port, env: env)
  end

  # The access log's lines in +kino+'s stdout once there are +count+ of
  # them: Kino's own lines there neither begin with a time nor are JSON.
  def access_lines(kino, count)
    wait_until(message: -> { "wanted #{count} access log lines in:\n#{kino.stdout}" }) do
      log_lines(kino).size >= count
    end
    log_lines(kino)
  end

  def log_lines(kino)
    kino.stdout.lines(chomp: true).grep(/\A(\e\[\d+m)?(\d{4}-\d\d-\d\dT|\{)/)
  end

  def text_fields(line)
    match = AccessLogLines::TEXT.match(line)
    raise "not an access log line: #{line.inspect}" unless match

    match.named_captures.transform_keys(&:to_sym)
  end

  # Everything the server sends for +request+ on a fresh connection, read
  # to its close.
  def exchange(request)
    socket = connect_with(request, @port)
    socket.read
  end

  in_each_mode do |mode|
    context "in the text format (the default)" do
      it "logs a request the app answered with its time, peer, request line, status, bytes, duration, " \
         "wait and worker" do
        kino = start_kino("log_requests true", mode: mode)
        before = Time.now.utc
        wire = exchange("GET /hello?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expect(wire).to start_with("HTTP/1.1 200 OK\r\n")
        line = access_lines(kino, 1).first
        fields = text_fields(line)
        expect(fields).to include(peer: "127.0.0.1", method: "GET", target: "/hello?x=1",
                                  protocol: "HTTP/1.1", status: "200", worker: "0")
        expect(Integer(fields[:bytes])).to eq(wire.bytesize)
        expect(Time.iso8601(fields[:time])).to be_between(before - 1, Time.now.utc)
        expect(Float(fields[:duration])).to be < 5000
        expect(fields[:wait]).to match(/\A\d+\.\d{3}ms\z/)
        expect(line).not_to include("\e")
      end

      # Lines pushed from different I/O threads may reach stdout in either
      # order (a connection's strand runs on any of them); each says when
      # its request began.
      it "logs each request of a keep-alive connection" do
        kino = start_kino("log_requests true", mode: mode)
        http(@port) do |client|
          expect(client.get("/first").code).to eq("200")
          expect(client.head("/second").code).to eq("200")
        end
        first, second = access_lines(kino, 2).map { |line| text_fields(line) }.sort_by { |f| f[:target] }
        expect([first[:method], first[:target], first[:status]]).to eq(%w[GET /first 200])
        expect([second[:method], second[:target], second[:status]]).to eq(%w[HEAD /second 200])
        expect(Integer(second[:bytes])).to be < Integer(first[:bytes]) # HEAD: no body
        expect(first[:time]).to be <= second[:time]
      end

      # What the server answers before any worker sees the request.
      {
        "413" => ["max_body_size 10", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"],
        "431" => ["max_header_size 1024", "POST /upload HTTP/1.1\r\nHost: x\r\nX-Big: #{'a' * 2000}\r\n\r\n"]
      }.each do |status, (limit, request)|
        it "logs a #{status} the server answered itself, with no wait and no worker" do
          kino = start_kino("log_requests true\n#{limit}", mode: mode)
          wire = exchange(request)
          expect(wire).to start_with("HTTP/1.1 #{status} ")
          fields = text_fields(access_lines(kino, 1).first)
          expect(fields).to include(method: "POST", target: "/upload", protocol: "HTTP/1.1", status: status,
                                    wait: "-", worker: "-")
          expect(Integer(fields[:bytes])).to eq(wire.bytesize)
        end
      end

      it "logs the 504 of a request the app took too long with, naming its worker" do
        kino = start_kino("log_requests true\nrequest_timeout 0.3",
                          mode: mode, rackup: "spec/fixtures/slow.ru", env: { "KINO_SPEC_SLOW_SECONDS" => "2" })
        wire = exchange("GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expect(wire).to start_with("HTTP/1.1 504 ")
        fields = text_fields(access_lines(kino, 1).first)
        expect(fields).to include(target: "/slow", status: "504", worker: "0")
        expect(Float(fields[:duration])).to be >= 300
      end

      it "escapes the quote and backslash a target may hold" do
        kino = start_kino("log_requests true", mode: mode)
        exchange("GET /a\"b\\c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expect(access_lines(kino, 1).first).to include('"GET /a\\x22b\\x5cc HTTP/1.1" 200 ')
      end

      it "logs a request line it could not read (a 400) with what it read of it" do
        kino = start_kino("log_requests true", mode: mode)
        wire = exchange("GET /caf\xC3\xA9 HTTP/1.1\r\nHost: x\r\n\r\n".b)
        expect(wire).to start_with("HTTP/1.1 400 ")
        fields = text_fields(access_lines(kino, 1).first)
        expect(fields).to include(method: "GET", target: "-", protocol: "-", status: "400")
      end
    end

    context "in the JSON format" do
      it "writes one JSON object a line, with null where there is nothing to say" do
        kino = start_kino("log_requests true\nlog_format :json\nmax_body_size 10", mode: mode)
        http(@port) { |client| expect(client.get("/hello?q=\"\\").code).to eq("200") }
        exchange("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        served, refused = access_lines(kino, 2).map { |line| JSON.parse(line) }.partition { |l| l["status"] == 200 }
                                               .map(&:first)
        expect(served).to include("peer" => "127.0.0.1", "method" => "GET", "target" => "/hello?q=\"\\",
                                  "protocol" => "HTTP/1.1", "status" => 200, "worker" => 0)
        expect(served.keys).to eq(%w[time peer method target protocol status bytes duration_ms wait_ms worker])
        expect(served["bytes"]).to be_a(Integer).and be_positive
        expect(served["duration_ms"]).to be_a(Float)
        expect(served["wait_ms"]).to be_a(Float)
        expect(Time.iso8601(served["time"])).to be_within(60).of(Time.now)
        expect(refused).to include("method" => "POST", "target" => "/up", "status" => 413,
                                   "wait_ms" => nil, "worker" => nil)
      end
    end

    it "writes no line at all when off" do
      kino = start_kino("", mode: mode)
      expect(exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).to start_with("HTTP/1.1 200")
      exchange("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: #{60 * 1024 * 1024}\r\n\r\n")
      kino.stop
      expect(kino.stdout).not_to include("/hello")
      expect(log_lines(kino)).to eq([])
    end
  end

  it "tints the line by status class when stdout is a terminal" do
    path = write("kino.rb", "workers 1\nthreads 1\nlog_requests true\n")
    port = free_port
    output = +""
    PTY.spawn(RbConfig.ruby, "exe/kino", "-C", path, "-m", "threaded", "-p", port.to_s,
              "spec/fixtures/hello.ru", chdir: ServerHelper::ROOT) do |reader, _writer, pid|
      read_until = lambda do |pattern|
        wait_until(message: -> { "the terminal never showed #{pattern.inspect}:\n#{output}" }) do
          output << reader.read_nonblock(4096) if reader.wait_readable(0.05)
          output.match?(pattern)
        rescue IO::WaitReadable
          false
        end
      end
      read_until.call(/Listening on/)
      expect(http_get("/tinted", port: port).code).to eq("200")
      expect(http_get("/missing-but-200", port: port).code).to eq("200")
      read_until.call(%r{/missing-but-200 HTTP/1\.1" 200 .*\e\[0m})
    ensure
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
    expect(output).to match(%r{\e\[32m\S+ 127\.0\.0\.1 "GET /tinted HTTP/1\.1" 200 .*\e\[0m\r?\n})
  end
end
