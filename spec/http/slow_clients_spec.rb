# frozen_string_literal: true

require "kino"

# The apps are modules, shareable, so the examples run in :threaded and
# :ractor mode alike; what they send is made per request, from frozen
# constants.
module SlowClientsApps
  CHUNK = ("x" * (8 << 20)).freeze
  BIG_SIZE = 12 << 20

  def self.binary
    { "content-type" => "application/octet-stream" }
  end

  # 320 MiB streamed as an each body, 8 MiB at a time; /quick answers at
  # once.
  module Stream
    def self.call(env)
      return [200, { "content-type" => "text/plain" }, ["quick\n"]] if env["PATH_INFO"] == "/quick"

      body = Enumerator.new { |y| 40.times { y << CHUNK } }
      [200, SlowClientsApps.binary, body]
    end
  end

  # One 12 MiB body.
  module Big
    def self.call(_env)
      [200, SlowClientsApps.binary, ["y" * BIG_SIZE]]
    end
  end

  # The request body, back.
  module EchoBody
    def self.call(env)
      [200, { "content-type" => "text/plain" }, [env["rack.input"].read]]
    end
  end
end

# Clients that read slowly or not at all, and pipelining mixed with
# Expect: 100-continue: each case here once broke the server. Every example
# runs in :threaded and in :ractor mode.
RSpec.describe "Slow clients and pipelining" do
  in_each_mode do |_mode|
    # One worker with two threads. In :threaded mode the worker threads and
    # the spec's share one GVL, so both checks below would stall if the
    # waiting thread held it. In :ractor mode the worker's ractor has a
    # lock of its own: the spec's thread runs regardless, and it is the
    # worker's other thread, answering /quick, that shows the waiting one
    # let go of that lock. (With threads: 1, /quick is not answered in time.)
    it "keeps other Ruby threads running while a streamed body waits for a client that does not read" do
      serve(SlowClientsApps::Stream, workers: 1, threads: 2, first_data_timeout: 5)
      connect_with("GET / HTTP/1.1\r\nHost: x\r\n\r\n") # and never read
      wait_until(message: "the app never started streaming") { server.stats[:in_flight] == 1 }
      sleep 0.3 # the worker is now waiting for the socket to drain
      started = monotonic
      sleep 0.2
      expect(monotonic - started).to be < 1.5 # the waiting worker does not hold the GVL
      # The write deadline (first_data_timeout, 5 s) would free a stuck
      # worker only well after this read has given up.
      other = connect
      other.write("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
      expect(read_response(other, timeout: 2).body).to eq("quick\n")
    end

    it "lets a slow but steady reader download a body larger than first_data_timeout allows in one go" do
      size = SlowClientsApps::BIG_SIZE
      serve(SlowClientsApps::Big, first_data_timeout: 1)
      socket = connect
      socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 64 * 1024)
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      received = 0
      deadline = monotonic + 30
      while received < size + 60 && monotonic < deadline
        break unless socket.wait_readable(2)

        data = socket.read_nonblock(256 * 1024, exception: false)
        break if data.nil?
        next if data == :wait_readable

        received += data.bytesize
        sleep 0.02 # about 10 MB/s at most: slower than loopback, never stalled
      end
      expect(received).to be > size
    end

    it "sends exactly one 100 Continue for a pipelined request that expects it" do
      serve(SlowClientsApps::EchoBody)
      socket = connect_with("GET /a HTTP/1.1\r\nHost: x\r\n\r\n" \
                            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
      first = read_response(socket)
      expect(first.status).to eq(200)
      final = send_after_continue(socket, "hello")
      expect(final.status).to eq(200)
      expect(final.body).to eq("hello")
      socket.write("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      last = read_response(socket)
      expect(last.status).to eq(200) # not a stray second 100 Continue
    end
  end
end
