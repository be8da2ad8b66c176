# frozen_string_literal: true

require "kino"

# Shareable apps for lent bodies: a String part of an Array body of at
# least 4 KiB is written by an I/O thread from the String's own bytes.
module LentBodyApps
  MIB = 1024 * 1024

  # The body a request asks for: `bytes` in `parts` Strings, each byte
  # telling its position, so a byte out of place shows.
  def self.pattern(bytes, offset = 0)
    ("0123456789abcdefghijklmnopqrstuvwxyz" * ((bytes / 36) + 2))[offset % 36, bytes]
  end

  def self.parts(query)
    params = query.split("&").to_h { |pair| pair.split("=", 2) }
    bytes = Integer(params.fetch("bytes"))
    count = Integer(params.fetch("parts", "1"))
    each = bytes / count
    # Each part owns its buffer (a slice would share a larger one), as an
    # app's own String usually does.
    Array.new(count) do |i|
      slice = pattern(i == count - 1 ? bytes - (each * i) : each, each * i)
      String.new(capacity: slice.bytesize) << slice
    end
  end

  # /body?bytes=N&parts=K: the pattern; /lent: Native.lent_bodies, from
  # the worker (ractor) that serves it; /mutate?bytes=N: the body is
  # overwritten by the app right after it returns.
  module App
    def self.call(env)
      case env["PATH_INFO"]
      when "/lent"
        [200, { "content-type" => "text/plain" }, [Kino::Native.lent_bodies.to_s]]
      when "/mutate"
        body = LentBodyApps.parts(env["QUERY_STRING"])
        Thread.new(body) do |strings|
          sleep 0.05
          strings.each { |s| s.tr!("0-9a-z", "!") }
        end
        [200, {}, body]
      when "/gc"
        # Garbage the size of the bodies, to reuse memory a lent String
        # would have had if it had not been held.
        20.times { "?" * LentBodyApps::MIB }
        GC.start
        [200, {}, ["gc"]]
      else
        [200, { "content-type" => "application/octet-stream" }, LentBodyApps.parts(env["QUERY_STRING"])]
      end
    end
  end
end

RSpec.describe "Lent (zero-copy) response bodies" do
  let(:mib) { LentBodyApps::MIB }
  # More than loopback's socket buffers hold for a client that does not
  # read (4 MiB of send buffer and the receive window): the write waits.
  let(:stalling) { 16 * mib }

  def get_body(path)
    response = http.get(path)
    expect(response.code).to eq("200")
    response.body
  end

  def lent
    Integer(get_body("/lent"))
  end

  # A request whose response the client does not read yet: the socket
  # fills, and the rest of the write waits for the client.
  def stalled(path)
    socket = connect
    socket.write("GET #{path} HTTP/1.1\r\nHost: x\r\n\r\n")
    socket
  end

  def read_whole(socket)
    response = read_response(socket)
    expect(response.status).to eq(200)
    response.body
  end

  in_each_mode do
    before { serve(LentBodyApps::App, lint: false, workers: 1, threads: 1) }

    it "writes bodies above and below 4 KiB unchanged" do
      [1, 4095, 4096, 10_000, (3 * mib) + 17].each do |bytes|
        expect(get_body("/body?bytes=#{bytes}")).to eq(LentBodyApps.pattern(bytes)), "#{bytes} bytes"
      end
      expect(get_body("/body?bytes=100000&parts=7")).to eq(LentBodyApps.pattern(100_000))
      wait_until(message: "every lent String let go") { lent.zero? }
    end

    it "holds a lent String while a slow client reads, and lets it go after" do
      socket = stalled("/body?bytes=#{stalling}")
      wait_until(message: "the String held while its write waits") { lent == 1 }
      sleep 0.2
      expect(read_whole(socket)).to eq(LentBodyApps.pattern(stalling))
      wait_until(message: "the String let go once written") { lent.zero? }
    end

    it "copies parts below 4 KiB, holding nothing while their write waits" do
      socket = stalled("/body?bytes=#{stalling}&parts=8192")
      sleep 0.2
      expect(lent).to eq(0)
      expect(read_whole(socket)).to eq(LentBodyApps.pattern(stalling))
    end

    it "lets go of the String when the client disconnects mid-write" do
      sockets = Array.new(3) { stalled("/body?bytes=#{stalling}") }
      wait_until(message: "three Strings held") { lent == 3 }
      sockets.each do |socket|
        socket.readpartial(1024)
        socket.close
      end
      wait_until(message: "no String held after the clients left") { lent.zero? }
    end

    it "sends the bytes the app returned though the app changes its String after" do
      socket = stalled("/mutate?bytes=#{stalling}")
      sleep 0.3 # the app's thread has overwritten its String by now
      expect(read_whole(socket)).to eq(LentBodyApps.pattern(stalling))
    end

    it "keeps a lent String through GC and compaction while its write waits" do
      socket = stalled("/body?bytes=#{stalling}&parts=2")
      wait_until(message: "two Strings held") { lent == 2 }
      get_body("/gc")
      GC.start
      compact
      get_body("/gc")
      expect(read_whole(socket)).to eq(LentBodyApps.pattern(stalling))
    end
  end

  # GC.compact moves what it can; verify_compaction_references moves
  # everything movable and checks every reference. Neither runs while
  # other ractors are alive on some Rubies: there GC.start has to do.
  def compact
    GC.verify_compaction_references(expand_heap: true, toward: :empty)
  rescue NotImplementedError, ArgumentError
    begin
      GC.compact
    rescue NotImplementedError
      GC.start
    end
  end

  context "with several ractors" do
    it "writes many lent bodies in flight from every worker" do
      start_server(LentBodyApps::App, lint: false, mode: :ractor, workers: 3, threads: 1)
      sizes = Array.new(24) { |i| (64 * 1024) + (i * 37_003) }
      sockets = sizes.map { |bytes| stalled("/body?bytes=#{bytes}&parts=#{1 + (bytes % 3)}") }
      sleep 0.1
      sockets.zip(sizes).each do |socket, bytes|
        expect(read_whole(socket)).to eq(LentBodyApps.pattern(bytes)), "#{bytes} bytes"
      end
    end
  end
end
