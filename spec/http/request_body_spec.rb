# frozen_string_literal: true

require "kino"

# Request bodies as they travel. By default every body is read whole before
# the app runs: in memory up to body_buffer_size (112 KiB), spooled to an
# unlinked file beyond it. With stream_request_bodies, longer ones, chunked
# ones and ones behind `Expect: 100-continue` reach the app while they
# arrive. Every example runs in both modes, over raw sockets, so the bytes
# and their timing are the client's to choose (spec/http/slow_uploads_spec.rb
# has the slow clients).
module BodyApps
  def self.text(body)
    [200, { "content-type" => "text/plain" }, [body]]
  end

  # The class of the server's rack.input under Rack::Lint's wrapper (the
  # specs run behind Lint so it checks the input's behaviour too).
  def self.kind(input)
    input = input.instance_variable_get(:@input) while input.class.name.start_with?("Rack::Lint")
    input.class.name
  end

  # Reads the whole body with read(n, buffer), the way an upload handler
  # does, and reports what it saw.
  module Digest
    def self.call(env)
      input = env["rack.input"]
      digest = ::Digest::SHA256.new
      buffer = String.new(capacity: 65_536)
      size = 0
      while input.read(65_536, buffer)
        size += buffer.bytesize
        digest << buffer
      end
      BodyApps.text(JSON.generate("class" => BodyApps.kind(input), "size" => size, "sha256" => digest.hexdigest))
    end
  end

  # Reads as many bytes as the query asks for and answers at once, before
  # the rest of the body has been sent.
  module Peek
    def self.call(env)
      wanted = Integer(env["QUERY_STRING"])
      data = env["rack.input"].read(wanted)
      BodyApps.text("peeked #{data.bytesize} of #{env['CONTENT_LENGTH'] || 'chunked'}")
    end
  end

  # Answers without looking at the body.
  module Refuse
    def self.call(_env)
      [403, { "content-type" => "text/plain" }, ["not here\n"]]
    end
  end

  # A Rack 3 streaming body that reads the request while it writes the
  # response: each 5-byte piece comes back upper-cased, as its own chunk.
  module Duplex
    def self.call(_env)
      body = lambda do |stream|
        while (piece = stream.read(5))
          stream.write(piece.upcase)
        end
        stream.close
      end
      [200, { "content-type" => "text/plain" }, body]
    end
  end

  # Asks for far more than any body: IO#read(length) semantics return what
  # there is at the end, without allocating `length` up front.
  module Greedy
    def self.call(env)
      data = env["rack.input"].read(1 << 40)
      BodyApps.text("got #{data.bytesize}")
    end
  end

  # What a request without a body gets as rack.input.
  module EmptyProbe
    def self.call(env)
      raw = env["rack.input"]
      raw = raw.instance_variable_get(:@input) while raw.class.name.start_with?("Rack::Lint")
      input = env["rack.input"]
      BodyApps.text(JSON.generate("shared" => raw.equal?(Kino::Input::EMPTY), "frozen" => raw.frozen?,
                                  "read" => input.read, "read5" => input.read(5), "gets" => input.gets,
                                  "encoding" => input.read.encoding.name))
    end
  end

  # gets, each and rewind over the same body.
  module Lines
    def self.call(env)
      input = env["rack.input"]
      first = input.gets
      rest = 0
      input.each { rest += 1 }
      input.rewind
      again = input.read.bytesize
      BodyApps.text(JSON.generate("first" => first, "rest" => rest, "again" => again, "class" => BodyApps.kind(input)))
    end
  end

  # Reads the whole body at once and reports its size, encoding and how
  # many bytes are "x".
  module BodyStats
    def self.call(env)
      data = env["rack.input"].read
      BodyApps.text("#{data.bytesize} #{data.encoding} #{data.count('x')}")
    end
  end
end

RSpec.describe "Request bodies" do
  include ServerHelper
  include UploadHelper

  def mib
    1024 * 1024
  end

  def rss_kib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  # Boots a server that gives up on a body after 0.5 s without data, sends
  # it the head of a 2 MiB upload and its first MiB and a bit (past the
  # memory limit), stalls, and reads the 408 that must end the connection.
  def answer_to_stalled_upload
    boot(BodyApps::Digest, first_data_timeout: 0.5)
    socket = connect_with(post_head("/", length: 2 * mib))
    socket.write("a" * (mib + 10))
    read_last_response(socket, 408)
  end

  # Descriptors of this process open on deleted files: spool files.
  def spool_files
    Dir.glob("/proc/self/fd/*").count do |fd|
      File.readlink(fd).end_with?("(deleted)")
    rescue SystemCallError
      false
    end
  end

  in_each_mode do |mode|
    define_method(:boot) do |app, **options|
      start_server(app, mode: mode, workers: 1, threads: 2, **options)
    end

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
      serve(BodyApps::BodyStats)
      payload = "x" * 300_000
      response = http { |h| h.post("/", payload, { "Content-Type" => "application/octet-stream" }) }
      expect(response.body).to eq("300000 ASCII-8BIT 300000")
    end

    it "decodes a chunked body, and keeps trailers out of the env" do
      serve(HttpApps::Echo)
      request = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
                "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: sneaky\r\n\r\n"
      response = read_response(connect_with(request))
      expect(response.status).to eq(200)
      env = env_of(response)
      expect(env["rack.input"]).to eq("hello, world")
      expect(env).not_to have_key("HTTP_X_TRAILER")
    end

    it "answers Expect: 100-continue with 100 Continue before the body is sent, then the response" do
      serve(HttpApps::Echo)
      socket = connect_with("POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n" \
                            "Connection: close\r\n\r\n")
      final = send_after_continue(socket, "abcde")
      expect(final.status).to eq(200)
      expect(env_of(final)["rack.input"]).to eq("abcde")
    end

    it "gives a request without a body the one shared, frozen empty input" do
      boot(BodyApps::EmptyProbe)
      2.times do
        expect(JSON.parse(http_get("/").body)).to eq("shared" => true, "frozen" => true, "read" => "",
                                                     "read5" => nil, "gets" => nil, "encoding" => "ASCII-8BIT")
      end
    end

    it "hands a small body over whole, as a StringIO" do
      boot(BodyApps::Digest)
      socket = connect
      body = "x" * 1000
      socket.write(post_head("/", length: body.bytesize))
      sleep 0.05 # head and body in separate reads: still one StringIO
      socket.write(body)
      response = read_response(socket)
      expect(response.status).to eq(200)
      expect(json(response)).to eq("class" => "StringIO", "size" => 1000,
                                   "sha256" => Digest::SHA256.hexdigest(body))
      expect(response["connection"]).to be_nil
    end

    it "hands a spooled body over intact once it is all here, keeping the connection" do
      boot(BodyApps::Digest)
      socket = connect
      body = Random.new(42).bytes((3 * mib) + 17)
      socket.write(post_head("/", length: body.bytesize))
      socket.write(body)
      response = read_response(socket)
      expect(json(response)).to eq("class" => "Kino::Input", "size" => body.bytesize,
                                   "sha256" => Digest::SHA256.hexdigest(body))
      expect(response["connection"]).to be_nil
      socket.write(post_head("/", length: 2))
      socket.write("ok")
      expect(json(read_response(socket))["size"]).to eq(2)
    end

    it "reads a long body whole before the app runs: a trickling upload ties up no worker" do
      boot(BodyApps::Digest)
      socket = connect
      body = Random.new(7).bytes(3 * mib)
      socket.write(post_head("/", length: body.bytesize))
      socket.write(body[0, 2 * mib])
      wait_until(message: "the first part never arrived") { spool_files.positive? }
      sleep 0.2
      expect(server.stats[:in_flight]).to eq(0)
      socket.write(body[(2 * mib)..])
      response = read_response(socket)
      expect(json(response)).to eq("class" => "Kino::Input", "size" => body.bytesize,
                                   "sha256" => Digest::SHA256.hexdigest(body))
      expect(response["connection"]).to be_nil
    end

    it "answers 408 to a body that stalls before it reaches the app, which never runs" do
      response = answer_to_stalled_upload
      expect(response.body).to include("request body stalled")
      expect(server.stats[:served]).to eq(0)
      expect(http_get("/").code).to eq("200")
    end

    it "answers 413 to a chunked body that outgrows max_body_size before the app sees it" do
      boot(BodyApps::Digest, max_body_size: 2 * mib)
      socket = connect_with(post_head("/", chunked: true))
      begin
        3.times { socket.write("#{mib.to_s(16)}\r\n#{'a' * mib}\r\n") }
      rescue Errno::EPIPE, Errno::ECONNRESET
        nil # the server may already have closed its side
      end
      response = read_response(socket)
      expect(response.status).to eq(413)
      expect(response["connection"]).to eq("close")
      expect(server.stats[:served]).to eq(0)
      expect(http_get("/").code).to eq("200")
    end

    it "reads a small chunked body whole before the app runs" do
      boot(BodyApps::Digest)
      socket = connect_with(post_head("/", chunked: true))
      socket.write("3\r\nabc\r\n")
      sleep 0.1
      expect(server.stats[:in_flight]).to eq(0) # a trickling small body ties up no worker
      socket.write("0\r\n\r\n")
      expect(json(read_response(socket))).to include("class" => "StringIO", "size" => 3)
    end

    it "supports gets, each and rewind on a spooled body" do
      # Rack 3's Lint wraps rack.input without #rewind (no longer in the
      # SPEC); Kino's input keeps it for apps written against Rack 2.
      boot(BodyApps::Lines, lint: false)
      socket = connect
      body = (1..200_000).map { |i| "line #{i}\n" }.join
      expect(body.bytesize).to be > mib
      socket.write(post_head("/", length: body.bytesize))
      socket.write(body)
      expect(json(read_response(socket))).to eq("first" => "line 1\n", "rest" => 199_999,
                                                "again" => body.bytesize, "class" => "Kino::Input")
    end

    it "returns what there is to read(2**40) without allocating that much" do
      boot(BodyApps::Greedy)
      socket = connect_with(post_head("/", length: 5, expect: true))
      expect(send_after_continue(socket, "hello").body).to eq("got 5")
      expect(server_log).not_to include("died")
    end

    it "takes a 1 GiB upload with RSS growth under 16 MiB" do
      skip "needs /proc" unless File.exist?("/proc/self/status")
      boot(BodyApps::Digest, max_body_size: 2 * 1024 * mib)
      warm = connect
      warm.write(post_head("/", length: 4 * mib))
      warm.write("w" * (4 * mib))
      expect(read_response(warm).status).to eq(200)
      GC.start
      before = rss_kib
      socket = connect
      size = 1024 * mib
      socket.write(post_head("/", length: size))
      piece = ("u" * mib).freeze
      1024.times { socket.write(piece) }
      response = read_response(socket, timeout: 60)
      growth_mib = (rss_kib - before) / 1024.0
      expect(json(response)).to include("size" => size, "class" => "Kino::Input")
      expect(growth_mib).to be < 16
    end

    it "lets go of the spool files and memory of 300 clients vanishing mid-upload" do
      skip "needs /proc" unless File.exist?("/proc/self/status")
      boot(BodyApps::Digest, max_body_size: 64 * mib)
      files_before = spool_files
      head = post_head("/", length: 8 * mib).freeze
      part = ("v" * (mib + (mib / 2))).freeze # past the memory limit: spooled
      vanish = lambda do |times|
        times.times do
          socket = Socket.tcp("127.0.0.1", server.port, connect_timeout: ServerHelper::IO_TIMEOUT)
          socket.write(head)
          socket.write(part)
          socket.close
        end
      end
      vanish.call(300) # warm up: buffers, caches, the heap
      wait_until(timeout: 10, message: "connections never closed") { server.stats[:connections_open].zero? }
      GC.start
      before = rss_kib
      vanish.call(300)
      wait_until(timeout: 10, message: "connections never closed") { server.stats[:connections_open].zero? }
      wait_until(timeout: 10, message: "spool files left open") { spool_files == files_before }
      GC.start
      # 450 MiB of bodies passed through: a body kept per client would
      # show as hundreds of MiB; what remains is heap noise.
      expect((rss_kib - before) / 1024.0).to be < 64
      expect(http_get("/").code).to eq("200")
    end

    context "with stream_request_bodies (the opt-in path)" do
      define_method(:boot) do |app, **options|
        start_server(app, mode: mode, workers: 1, threads: 2, stream_request_bodies: true, **options)
      end

      it "lets the app read a long body before its last byte is sent" do
        boot(BodyApps::Peek)
        socket = connect_with(post_head("/?100", length: 3 * mib))
        socket.write("a" * (2 * mib))
        # The client still owes a mebibyte, and the answer is already here.
        response = read_response(socket)
        expect(response.status).to eq(200)
        expect(response.body).to eq("peeked 100 of #{3 * mib}")
        # The unread rest stands between this response and the next: close.
        expect(response["connection"]).to eq("close")
        expect(http_get("/?0").code).to eq("200")
      end

      it "streams a chunked body past 1 MiB to the app as it arrives" do
        boot(BodyApps::Digest)
        socket = connect_with(post_head("/", chunked: true))
        pieces = Array.new(40) { |i| (i.to_s * 32_768).b[0, 32_768] }
        pieces.each do |piece|
          socket.write("#{piece.bytesize.to_s(16)};ext=1\r\n#{piece}\r\n")
          sleep 0.005
        end
        socket.write("0\r\nX-Trailer: t\r\n\r\n")
        response = read_response(socket)
        expect(json(response)).to eq("class" => "Kino::Input", "size" => pieces.sum(&:bytesize),
                                     "sha256" => Digest::SHA256.hexdigest(pieces.join))
      end

      it "talks both ways: a streaming response echoes the request body while it arrives" do
        boot(BodyApps::Duplex, lint: false)
        socket = connect
        # Expect: 100-continue hands even a small body to the app at once.
        socket.write(post_head("/", chunked: true, expect: true))
        response = read_head(socket)
        expect(response.status).to eq(200)
        %w[hello world kinos].each do |word|
          socket.write("5\r\n#{word}\r\n")
          # The echo of each piece comes back before the next is sent.
          expect(read_chunk(socket)).to eq(word.upcase)
        end
        socket.write("0\r\n\r\n")
        expect(read_chunk(socket, response: response)).to be_nil
        expect(response.complete?).to be(true)
      end

      it "sends 100 Continue only once the app reads the body" do
        boot(BodyApps::Digest)
        socket = connect_with(post_head("/", length: 5, expect: true))
        response = send_after_continue(socket, "hello")
        expect(json(response)).to include("size" => 5, "class" => "Kino::Input")
        expect(response["connection"]).to be_nil
      end

      it "never sends 100 Continue when the app answers without reading, and closes" do
        boot(BodyApps::Refuse)
        socket = connect_with(post_head("/", length: 10 * mib, expect: true))
        read_last_response(socket, 403)
        expect(http_get("/").code).to eq("403")
      end

      it "answers 408 to a body that stalls while the app reads it, and the app's read fails" do
        answer_to_stalled_upload
        wait_for_log(%r{request body of POST / cut off: request body stalled \(408\)})
        expect(server_log).not_to include("error while serving")
        expect(http_get("/").code).to eq("200")
      end

      it "answers 413 to a chunked body that outgrows max_body_size while streaming" do
        boot(BodyApps::Digest, max_body_size: 2 * mib)
        socket = connect_with(post_head("/", chunked: true))
        socket.write("#{(mib + 10).to_s(16)}\r\n#{'a' * (mib + 10)}\r\n") # past 1 MiB: streaming
        wait_until(message: "the body never reached the app") { server.stats[:in_flight] == 1 }
        begin
          socket.write("#{mib.to_s(16)}\r\n#{'b' * mib}\r\n")
        rescue Errno::EPIPE, Errno::ECONNRESET
          nil # the server may already have closed its side
        end
        read_last_response(socket, 413)
        wait_for_log(%r{request body of POST / cut off: request body too large \(413\)})
        expect(http_get("/").code).to eq("200")
      end

      it "does not count a slow upload against request_timeout" do
        boot(BodyApps::Digest, request_timeout: 0.5)
        socket = connect_with(post_head("/", length: 2 * mib))
        8.times do
          socket.write("s" * (mib / 4))
          sleep 0.15 # 1.2 s of upload in all
        end
        response = read_response(socket)
        expect(response.status).to eq(200)
        expect(json(response)).to include("size" => 2 * mib, "class" => "Kino::Input")
      end
    end
  end
end
