# frozen_string_literal: true

require "kino"

# Slow uploads (issue 8): by default a request reaches a worker only once
# its whole body has arrived, so clients trickling uploads cost
# connections, not workers; a body slower than min_body_rate is cut off
# with 408; Kino answers `Expect: 100-continue` itself; the spool on disk
# has a global limit. The apps are modules (shareable), so every example
# runs in :threaded and :ractor mode, over raw sockets.
module SlowUploadApps
  # Reads the whole body and reports what it saw; GET answers at once.
  module Digest
    def self.call(env)
      input = env["rack.input"]
      raw = input
      raw = raw.instance_variable_get(:@input) while raw.class.name.start_with?("Rack::Lint")
      digest = ::Digest::SHA256.new
      size = 0
      while (piece = input.read(65_536))
        size += piece.bytesize
        digest << piece
      end
      body = JSON.generate("class" => raw.class.name, "size" => size, "sha256" => digest.hexdigest)
      [200, { "content-type" => "application/json" }, [body]]
    end
  end
end

RSpec.describe "Slow uploads" do
  include UploadHelper

  def kib
    1024
  end

  # Writes +body+ in +pieces+ parts with a pause between them, so the
  # server sees it arrive over several reads.
  def send_slowly(socket, body, pieces: 8, pause: 0.02)
    size = (body.bytesize + pieces - 1) / pieces
    (0...body.bytesize).step(size) do |offset|
      socket.write(body.byteslice(offset, size))
      sleep pause
    end
  end

  # Writes one byte every 0.4 s, ten at the most, until the server answers
  # or closes the connection.
  def trickle_bytes(socket)
    10.times do
      socket.write("z")
      break if socket.wait_readable(0.4)
    rescue Errno::EPIPE, Errno::ECONNRESET
      break
    end
  end

  in_each_mode do |mode|
    define_method(:boot) do |**options|
      start_server(SlowUploadApps::Digest, mode: mode, workers: 2, threads: 1, **options)
    end

    it "keeps serving a plain GET within 1 s while four clients trickle 2 MB uploads" do
      boot
      uploads = Array.new(4) do
        socket = connect_with(post_head(length: 2_000_000))
        socket
      end
      trickle = Thread.new do
        # A few bytes each, every 50 ms: far from 2 MB, but fast enough
        # for the default minimum rate's first window.
        60.times do
          uploads.each { |socket| socket.write("abcdefgh") }
          sleep 0.05
        end
      end
      sleep 0.3 # every upload is under way
      slowest = Array.new(5) do
        started = monotonic
        expect(http_get("/").code).to eq("200")
        elapsed = monotonic - started
        sleep 0.2
        elapsed
      end.max
      expect(slowest).to be < 1.0
      expect(server.stats[:in_flight]).to eq(0) # no upload reached a worker
    ensure
      trickle&.kill
      trickle&.join
    end

    it "answers 408 to a body below the minimum rate, though no gap reaches first_data_timeout" do
      # One byte per 0.4 s with first_data_timeout 0.5 is the test-sized
      # version of one byte every 29 s against the default 30 s.
      boot(first_data_timeout: 0.5, min_body_rate: 100, min_body_rate_window: 0.5)
      socket = connect_with(post_head(length: 10_000))
      started = monotonic
      trickle_bytes(socket)
      response = read_response(socket)
      expect(response.status).to eq(408)
      expect(response.body).to include("request body arrived too slowly")
      expect(response["connection"]).to eq("close")
      expect(monotonic - started).to be < 2.5 # two windows and the sweeper's tick
      expect(closed_by_peer?(socket)).to be(true)
      expect(server.stats[:served]).to eq(0)
      expect(http_get("/").code).to eq("200")
    end

    it "cuts a too-slow streamed body too, and the app's read fails" do
      # Past body_buffer_size, so it streams (smaller bodies are still
      # read whole first).
      boot(stream_request_bodies: true, body_buffer_size: 1000, first_data_timeout: 0.5,
           min_body_rate: 100, min_body_rate_window: 0.5)
      socket = connect_with(post_head(length: 10_000))
      trickle_bytes(socket)
      response = read_response(socket)
      expect(response.status).to eq(408)
      expect(response["connection"]).to eq("close")
      expect(server.stats[:requests_received]).to eq(1) # it did go to a worker at its head
      wait_for_log(%r{request body of POST /upload cut off: request body arrived too slowly \(408\)})
    end

    it "sends 100 Continue itself and reads the body before the app runs" do
      boot
      socket = connect_with(post_head(length: 5, expect: true))
      interim = read_response(socket)
      expect(interim.status).to eq(100)
      sleep 0.1
      expect(server.stats[:in_flight]).to eq(0) # the app waits for the body, not the client
      socket.write("hello")
      response = read_response(socket)
      expect(json(response)).to eq("class" => "StringIO", "size" => 5, "sha256" => digest_of("hello"))
      expect(response["connection"]).to be_nil
    end

    it "answers 413 to Expect: 100-continue with a length past max_body_size, reading nothing" do
      boot(max_body_size: 1000)
      socket = connect_with(post_head(length: 5000, expect: true))
      read_last_response(socket, 413) # no 100, and no body was ever sent
      expect(server.stats[:served]).to eq(0)
    end

    it "answers 503 with retry-after to an upload that would pass max_spool_size" do
      boot(body_buffer_size: 16 * kib, max_spool_size: 600 * kib)
      first = connect
      first_body = Random.new(1).bytes(400 * kib)
      first.write(post_head(length: first_body.bytesize))
      first.write(first_body.byteslice(0, 390 * kib)) # 390 KiB spooled: 210 KiB left
      wait_until(message: "the first upload never spooled") { server.stats[:spooled_bytes] >= 390 * kib }
      second = connect
      second.write(post_head(length: 400 * kib))
      refused = read_response(second)
      expect(refused.status).to eq(503)
      expect(refused["retry-after"]).to eq("1")
      expect(refused["connection"]).to eq("close")
      first.write(first_body.byteslice((390 * kib)..))
      expect(json(read_response(first))).to include("size" => first_body.bytesize,
                                                    "sha256" => digest_of(first_body))
      # The first upload's room comes back once its response is out.
      third_body = Random.new(3).bytes(400 * kib)
      response = wait_until(message: "the spool never had room again") do
        third = connect
        third.write(post_head(length: third_body.bytesize))
        third.write(third_body)
        answer = read_response(third)
        answer.status == 200 ? answer : (sleep(0.05) && nil)
      rescue Errno::EPIPE, Errno::ECONNRESET
        nil
      end
      expect(json(response)).to include("class" => "Kino::Input", "sha256" => digest_of(third_body))
    end

    it "lets no head that announces a large body and sends nothing hold the spool" do
      boot(body_buffer_size: 16 * kib, max_spool_size: 600 * kib)
      idle = Array.new(3) do
        socket = connect_with(post_head(length: 400 * kib)) # 1200 KiB announced in all
        socket
      end
      wait_until(message: "the idle heads never arrived") { server.stats[:spool_files] == 3 }
      body = Random.new(4).bytes(400 * kib)
      real = connect
      real.write(post_head(length: body.bytesize))
      real.write(body)
      expect(json(read_response(real))).to include("size" => body.bytesize, "sha256" => digest_of(body))
    ensure
      idle&.each(&:close)
    end

    it "hands the app the whole body, in memory and spooled, however it trickles in" do
      boot
      small = Random.new(11).bytes(50 * kib)
      large = Random.new(12).bytes(2_000_000)
      { small => "StringIO", large => "Kino::Input" }.each do |body, kind|
        socket = connect_with(post_head(length: body.bytesize))
        send_slowly(socket, body)
        expect(json(read_response(socket))).to eq("class" => kind, "size" => body.bytesize,
                                                  "sha256" => digest_of(body))
      end
      chunked = Random.new(13).bytes(300 * kib)
      socket = connect_with(post_head(chunked: true))
      chunked.bytes.each_slice(64 * kib).map { |piece| piece.pack("C*") }.each do |piece|
        socket.write("#{piece.bytesize.to_s(16)}\r\n#{piece}\r\n")
        sleep 0.02
      end
      socket.write("0\r\n\r\n")
      expect(json(read_response(socket))).to eq("class" => "Kino::Input", "size" => chunked.bytesize,
                                                "sha256" => digest_of(chunked))
    end
  end
end
