# frozen_string_literal: true

require "kino"

# The app is a module, shareable, so the examples run in :threaded and
# :ractor mode alike.
module TimeoutsApps
  # Sleeps for ?sleep=SECONDS (Kino.sleep, which a stopping server can cut
  # short), then answers "ok".
  module Sleepy
    def self.call(env)
      Kino.sleep(Float(env["QUERY_STRING"][/sleep=([\d.]+)/, 1] || 0))
      [200, { "content-type" => "text/plain" }, ["ok\n"]]
    end
  end
end

# Deadlines that protect the server from slow and stalled clients, and the
# app's clients from a slow app: first_data_timeout, persistent_timeout,
# request_timeout. Short values keep the examples quick; the server checks
# deadlines every 250 ms, so the bounds below leave room for that. Every
# example runs in :threaded and in :ractor mode.
RSpec.describe "Timeouts" do
  in_each_mode do
    let(:app) { TimeoutsApps::Sleepy }

    describe "first_data_timeout" do
      before { serve(app, first_data_timeout: 1, persistent_timeout: 5) }

      it "answers 408 and closes when the head dribbles in too slowly (slowloris)" do
        socket = connect
        started = monotonic
        begin
          "GET / HTTP/1.1\r\nHost: x\r\n".each_char do |c|
            socket.write(c)
            sleep 0.02
          end
          12.times do
            socket.write("X-Slow: 1\r\n")
            sleep 0.2
          end
        rescue Errno::EPIPE, Errno::ECONNRESET
          nil # the server gave up on us while we were still writing
        end
        response = read_response(socket)
        expect(response.status).to eq(408)
        expect(response["connection"]).to eq("close")
        expect(monotonic - started).to be < 4
        expect(closed_by_peer?(socket)).to be(true)
        expect(http_get("/").code).to eq("200")
      end

      it "closes a connection that never sends a byte" do
        socket = connect
        started = monotonic
        expect(closed_by_peer?(socket, timeout: 4)).to be(true)
        expect(monotonic - started).to be_between(0.9, 4)
      end

      it "answers 408 when a request body stalls" do
        socket = connect_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        read_last_response(socket, 408)
        expect(server.stats[:timeouts]).to be >= 1
      end

      it "lets a slow but steady body through" do
        socket = connect_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        "abcdef".each_char do |c|
          sleep 0.3
          socket.write(c)
        end
        expect(read_response(socket).status).to eq(200)
      end
    end

    describe "persistent_timeout" do
      before { serve(app, persistent_timeout: 0.5, first_data_timeout: 5) }

      it "closes an idle keep-alive connection after its response" do
        socket = connect_with("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(read_response(socket).status).to eq(200)
        started = monotonic
        expect(closed_by_peer?(socket, timeout: 4)).to be(true)
        expect(monotonic - started).to be_between(0.4, 3)
      end

      it "keeps a connection that keeps asking" do
        socket = connect
        4.times do
          socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
          expect(read_response(socket).status).to eq(200)
          sleep 0.2
        end
        expect(server.stats[:connections_accepted]).to eq(1)
      end
    end

    describe "request_timeout" do
      before { serve(app, request_timeout: 0.5) }

      it "answers 504 while the app runs on, and drops the app's late answer" do
        socket = connect
        started = monotonic
        socket.write("GET /?sleep=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(socket)
        expect(response.status).to eq(504)
        expect(monotonic - started).to be < 1.9
        # The connection stays usable: the next request is answered, and the
        # slow handler's answer, once it comes, is not mistaken for it.
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(read_response(socket).body).to eq("ok\n")
        sleep 1.8
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(read_response(socket).body).to eq("ok\n")
        expect(server.stats[:timeouts]).to eq(1)
      end
    end
  end
end
