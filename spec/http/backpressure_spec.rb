# frozen_string_literal: true

require "kino"

# The app is a module, shareable, so the examples run in :threaded and
# :ractor mode alike.
module BackpressureApps
  # Answers with the path; /slow first sleeps 0.8 s.
  module Path
    def self.call(env)
      Kino.sleep(0.8) if env["PATH_INFO"] == "/slow"
      [200, { "content-type" => "text/plain" }, ["#{env['PATH_INFO']}\n"]]
    end
  end

  # Like Path, and says when (monotonic ns, one clock for every ractor of
  # the process) the request reached the app.
  module Stamped
    def self.call(env)
      at = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
      Kino.sleep(0.8) if env["PATH_INFO"] == "/slow"
      [200, { "content-type" => "text/plain" }, ["#{env['PATH_INFO']} #{at}"]]
    end
  end
end

# queue_depth and queue_timeout: past the depth a request waits in line for
# a place; one that finds none within queue_timeout is answered 503 with
# retry-after by the native side, without reaching Ruby. Every example runs
# in :threaded and in :ractor mode.
RSpec.describe "Backpressure" do
  in_each_mode do
    let(:app) { BackpressureApps::Path }

    # One server per example, each with the queue_timeout it needs.
    it "answers 503 with retry-after to requests that found no place in time" do
      serve(app, workers: 1, threads: 1, queue_depth: 1, queue_timeout: 0.3)
      busy = connect
      busy.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") # taken by the only worker
      wait_until(message: "the worker never took /slow") do
        server.stats[:queued].zero? && server.stats[:in_flight] == 1
      end
      queued = connect
      queued.write("GET /queued HTTP/1.1\r\nHost: x\r\n\r\n") # the one place in the queue
      # Each connection may be read by another I/O thread: let /queued take
      # the place before the others arrive, or one of them may take it.
      wait_until(message: "/queued never reached the queue") { server.stats[:queued] == 1 }
      waiting = Array.new(2) { connect }
      waiting.each_with_index { |s, i| s.write("GET /waiting#{i} HTTP/1.1\r\nHost: x\r\n\r\n") }

      refused = waiting.map { |s| read_response(s) }
      expect(refused.map(&:status)).to eq([503, 503])
      expect(refused.map { |r| r["retry-after"] }).to all(eq("1"))
      expect(server.stats[:rejected]).to eq(2)

      expect(read_response(busy).status).to eq(200)
      expect(read_response(queued).body).to eq("/queued\n")
      expect(http_get("/after").body).to eq("/after\n")
    end

    it "serves waiting requests in arrival order when places free up in time" do
      server_with_room = serve(BackpressureApps::Stamped, workers: 1, threads: 1, queue_depth: 1, queue_timeout: 5)
      sockets = Array.new(3) { connect(server_with_room.port) }
      sockets[0].write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
      wait_until { server_with_room.stats[:in_flight] == 1 && server_with_room.stats[:queued].zero? }
      sockets[1].write("GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
      wait_until { server_with_room.stats[:queued] == 1 }
      sockets[2].write("GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
      wait_until { server_with_room.stats[:queued] == 2 }
      responses = sockets.map { |s| read_response(s) }
      expect(responses.map(&:status)).to eq([200, 200, 200])
      served = responses.map { |r| r.body.split }
      expect(served.map(&:first)).to eq(%w[/slow /second /third])
      # One worker thread: the app saw them in the order they arrived.
      stamps = served.map { |_, at| Integer(at) }
      expect(stamps).to eq(stamps.sort)
      expect(server_with_room.stats[:rejected]).to eq(0)
    end
  end
end
