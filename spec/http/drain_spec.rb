# frozen_string_literal: true

require "kino"

# Graceful drain under load: many keep-alive clients keep requests in
# flight while the server is told to stop. Every request that reached the
# app must be answered whole with 200; what arrives after the stop began
# may be refused (connection refused, closed unanswered, or 503 with
# `connection: close`), never cut off half-way.
module DrainApps
  # Notes each request's id in the file the spec names (appends from any
  # ractor are atomic for a line this short), then takes its time.
  module Slow
    def self.call(env)
      File.write(env["HTTP_X_LOG"], "#{env['HTTP_X_ID']}\n", mode: "a")
      Kino.sleep(0.05)
      [200, { "content-type" => "text/plain" }, ["done #{env['HTTP_X_ID']}"]]
    end
  end

  # Answers with the size of the body it read.
  module Upload
    def self.call(env)
      [200, { "content-type" => "text/plain" }, ["got #{env['rack.input'].read.bytesize}"]]
    end
  end
end

RSpec.describe "Graceful drain under load" do
  include ServerHelper

  # One client: requests on a keep-alive connection (reconnecting when the
  # server closes it) until the server refuses it. Returns [id, outcome].
  def client_loop(port, log_path, client, stop_at)
    outcomes = []
    socket = nil
    n = 0
    while monotonic < stop_at
      begin
        socket ||= Socket.tcp("127.0.0.1", port, connect_timeout: ServerHelper::IO_TIMEOUT)
      rescue SystemCallError
        break # no longer accepting
      end
      id = "#{client}-#{n += 1}"
      begin
        socket.write("GET /x HTTP/1.1\r\nHost: x\r\nX-Id: #{id}\r\nX-Log: #{log_path}\r\n\r\n")
        response = read_response(socket)
        outcomes << [id, response.status, response.complete?, response.body, response["connection"]]
        if response["connection"] == "close"
          socket.close
          socket = nil
        end
      rescue EOFError, SystemCallError => e
        outcomes << [id, :closed, e.class.name]
        socket&.close
        socket = nil
      end
    end
    socket&.close
    outcomes
  end

  %i[threaded ractor].each do |mode|
    it "answers every request in flight when shutdown begins (#{mode} mode)" do
      @drain_dir = Dir.mktmpdir("kino-drain")
      log_path = File.join(@drain_dir, "seen")
      File.write(log_path, "")
      start_server(DrainApps::Slow, mode: mode, workers: 2, threads: 4)
      port = server.port
      stop_at = monotonic + 20
      clients = Array.new(12) { |c| Thread.new { client_loop(port, log_path, c, stop_at) } }
      wait_until(message: "load never built up") { server.stats[:in_flight] >= 4 }
      sleep 0.3
      in_flight = server.stats[:in_flight]
      stragglers = server.shutdown(10)
      outcomes = clients.flat_map(&:value)

      expect(in_flight).to be >= 4
      expect(stragglers).to eq(0)
      seen = File.read(log_path).split("\n")
      answered = outcomes.select { |_, status, complete| status == 200 && complete }.map(&:first)
      expect(seen).not_to be_empty
      # Every request the app began was answered whole.
      expect(seen - answered).to eq([])
      expect(answered.size).to eq(seen.size)
      outcomes.each do |id, status, complete, body, connection|
        case status
        when 200 then expect(body).to eq("done #{id}")
        when 503 then expect([complete, connection]).to eq([true, "close"])
        when :closed then expect(seen).not_to include(id)
        else raise "request #{id} got #{status.inspect}"
        end
      end
      expect(server_log).not_to match(/cut off|error while serving/)
    ensure
      FileUtils.rm_rf(@drain_dir) if @drain_dir
    end
  end

  # Bodies are read whole before a worker sees them, so an upload still
  # arriving is no request in flight yet; a drain must wait for it anyway,
  # as it waits for a request with the app.
  %i[threaded ractor].each do |mode|
    it "finishes an upload still arriving when shutdown begins, and answers it (#{mode} mode)" do
      start_server(DrainApps::Upload, mode: mode, workers: 1, threads: 1)
      body = "a" * 300_000 # spooled: past body_buffer_size
      socket = connect_with("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: #{body.bytesize}\r\n\r\n")
      socket.write(body[0, 1000])
      # Its head is in once its spool file is open.
      wait_until(message: "the upload never began") { server.stats[:spool_files] == 1 }
      stopping = Thread.new { server.shutdown(10) }
      sleep 0.5 # the drain has begun and found nothing in flight
      expect(stopping).to be_alive
      socket.write(body[1000..])
      response = read_response(socket)
      expect([response.status, response.body, response["connection"]]).to eq([200, "got 300000", "close"])
      expect(stopping.value).to eq(0)
    ensure
      socket&.close
    end
  end
end
