# frozen_string_literal: true

require "kino"

# The app is a module, shareable, so the example runs in :threaded and
# :ractor mode alike.
module VanishingClientsApps
  BIG = ("z" * (256 * 1024)).freeze

  # Reads the whole request body, then answers 256 KiB.
  module Big
    def self.call(env)
      env["rack.input"].read
      [200, { "content-type" => "application/octet-stream" }, [BIG]]
    end
  end
end

# Clients that vanish mid-request and mid-response, many times over: the
# server must neither crash nor keep what they left behind. Runs in
# :threaded and in :ractor mode.
RSpec.describe "Vanishing clients" do
  def rss_kib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  def vanish(times, port)
    times.times do |i|
      socket = Socket.tcp("127.0.0.1", port, connect_timeout: ServerHelper::IO_TIMEOUT)
      if i.even?
        # mid-body: the head promises more than ever comes
        socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
      else
        # mid-response: ask for 256 KiB, read a little, leave
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        socket.wait_readable(ServerHelper::IO_TIMEOUT)
        socket.read_nonblock(1024, exception: false)
      end
      socket.close
    end
  end

  in_each_mode do
    it "survives 11,000 of them with memory flat and the server still answering" do
      skip "needs /proc" unless File.exist?("/proc/self/status")
      serve(VanishingClientsApps::Big, workers: 1, threads: 4, lint: false)
      # Warm up: buffers, caches, the heap. Under load more responses are
      # in flight at once, and the allocators keep that peak, so RSS is
      # measured once it has plateaued: a leak grows it in every batch.
      [1000, 5000].each do |warm_up|
        vanish(warm_up, server.port)
        GC.start
        wait_until(timeout: 10, message: "connections never closed") { server.stats[:connections_open].zero? }
      end
      before = rss_kib
      vanish(5000, server.port)
      GC.start
      wait_until(timeout: 10, message: "connections never closed") { server.stats[:connections_open].zero? }
      growth_mib = (rss_kib - before) / 1024.0
      expect(server.stats[:served]).to be >= 5000 # the mid-response half reached the app
      expect(growth_mib).to be < 16 # 5,000 clients: a leak of 3.3 KiB each would show
      expect(http_get("/").code).to eq("200")
    end
  end
end
