# frozen_string_literal: true

require "kino"

# A 1 GiB streamed response goes out chunk by chunk with write
# back-pressure: the process never holds more than a little of it. The app
# is this module, shareable, so the example runs in :threaded and in
# :ractor mode.
module LargeStream
  CHUNK = ("s" * (64 * 1024)).freeze
  GIB = 1 << 30

  def self.call(_env)
    body = Enumerator.new { |y| (GIB / CHUNK.bytesize).times { y << CHUNK } }
    [200, { "content-type" => "application/octet-stream" }, body]
  end
end

RSpec.describe "A 1 GiB streamed response" do
  def rss_kib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  in_each_mode do
    it "reaches the client whole while RSS grows by a few MiB at most" do
      skip "needs /proc" unless File.exist?("/proc/self/status")
      serve(LargeStream, workers: 1, threads: 1, lint: false)
      GC.start
      before = rss_kib
      peak = before
      socket = connect_with("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      buffer = String.new(capacity: 1 << 20)
      received = 0
      deadline = monotonic + 120
      while monotonic < deadline
        break unless socket.wait_readable(5)

        data = socket.read_nonblock(1 << 20, buffer, exception: false)
        break if data.nil?
        next if data == :wait_readable

        received += data.bytesize
        peak = [peak, rss_kib].max if (received % (64 << 20)) < (1 << 20)
      end
      expect(received).to be > LargeStream::GIB # the body, plus chunk framing and the head
      expect((peak - before) / 1024.0).to be < 16
    end
  end
end
