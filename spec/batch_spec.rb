# frozen_string_literal: true

require "kino"

# `batch N`: a worker thread that wakes for a request takes up to N - 1
# more that are queued already, holds them natively and serves them one
# after another. Each example first fills a batch the same way, with one
# worker thread: a request held at a gate keeps the thread busy while
# others queue, one connection each, then the gate opens and the thread's
# next visit to the queue takes them all. That they left the queue in one
# visit shows in stats (queued 0 while the first of them is still in the
# app); with one request a visit the others would still be queued.
module BatchApps
  # /hold waits at the X-Gate file; /crash waits there too, then raises an
  # Exception that ends the worker; /raise raises a StandardError (500,
  # the worker goes on); /touch creates the X-Gate file (so a spec can see
  # whether the app ran it); anything else answers its path.
  module Gated
    def self.call(env)
      case env["PATH_INFO"]
      when "/hold" then HttpApps::Gate.wait(env["HTTP_X_GATE"])
      when "/crash"
        HttpApps::Gate.wait(env["HTTP_X_GATE"])
        raise Exception, "worker down on purpose" # rubocop:disable Lint/RaiseException
      when "/raise" then raise "app error on purpose"
      when "/touch" then HttpApps::Gate.open(env["HTTP_X_GATE"])
      end
      [200, { "content-type" => "text/plain" }, ["#{env['PATH_INFO']}\n"]]
    end
  end
end

RSpec.describe "batch" do
  include_context "supervised workers"

  # Holds /hold at +first_gate+, queues +requests+ ([path, gate] pairs) in
  # order behind it, then opens the gate. Returns the background requests
  # (SupervisorHelpers#request_in_background), the held one first.
  def fill_batch(first_gate, requests)
    held = request_in_background("/hold", first_gate)
    wait_until(message: -> { "the first request never reached the app: #{server.stats}" }) { taken_by_worker?(1) }
    queued = requests.each_with_index.map do |(path, gate), i|
      client = request_in_background(path, gate)
      wait_until(message: -> { "#{path} was never queued: #{server.stats}" }) { server.stats[:queued] == i + 1 }
      client
    end
    HttpApps::Gate.open(first_gate)
    expect(held.value).to eq(["200", "/hold\n"])
    queued
  end

  # Whether worker threads hold +count+ requests they have not answered,
  # with none left in the queue. Not requests_in_app: in_flight counts a
  # request a moment before it enters the queue, so in_flight - queued is
  # 1 before /hold is even queued, and the request sent next may then
  # leave the queue with it, in one visit.
  def taken_by_worker?(count)
    stats = server.stats
    stats[:slots].count { |row| row[:in_flight] } == count && stats[:queued].zero?
  end

  def expect_taken_in_one_visit
    wait_until(message: -> { "the batch never left the queue: #{server.stats}" }) { server.stats[:queued].zero? }
  end

  it "refuses a batch outside 1..64 at boot" do
    expect { Kino::Server.new(->(_env) { [200, {}, []] }, batch: 65) }
      .to raise_error(Kino::ConfigError, /batch must be an Integer from 1 to 64 \(got 65\)/)
  end

  in_each_mode do |mode|
    threads = mode == :ractor ? 1 : 2

    it "answers pipelined and concurrent requests in order, several taken a visit" do
      serve(BatchApps::Gated, workers: 2, threads: threads, batch: 4)
      expect(server.stats[:batch]).to eq(4)
      connections = Array.new(8) { connect }
      connections.each_with_index do |socket, c|
        socket.write((0...25).map { |i| "GET /c#{c}/r#{i} HTTP/1.1\r\nHost: x\r\n\r\n" }.join)
      end
      bodies = connections.map { |socket| Array.new(25) { read_response(socket).body } }
      expect(bodies).to eq(Array.new(8) { |c| Array.new(25) { |i| "/c#{c}/r#{i}\n" } })
      expect(server_log).not_to include("`batch` is not implemented")
    end

    it "serves the rest of a batch after the app raises in the middle of it" do
      serve(BatchApps::Gated, workers: 1, threads: 1, batch: 4)
      second = signal_path("second")
      clients = fill_batch(signal_path("first"), [["/raise", nil], ["/hold", second], ["/after", nil]])
      expect(clients[0].value).to eq(["500", "Internal Server Error\n"])
      expect_taken_in_one_visit
      # The 500 leaves in_flight when its write completes, which may be
      # after the client read it.
      wait_until(message: -> { "the 500 never left in_flight: #{server.stats}" }) { server.stats[:in_flight] == 2 }
      HttpApps::Gate.open(second)
      expect(clients.drop(1).map(&:value)).to eq([["200", "/hold\n"], ["200", "/after\n"]])
    end

    it "gives the requests held by a worker that dies back to the queue, for its replacement" do
      serve(BatchApps::Gated, workers: 1, threads: 1, batch: 4, on_worker_exit: on_worker_exit)
      crash = signal_path("crash")
      clients = fill_batch(signal_path("first"), [["/crash", crash], ["/b", nil], ["/c", nil]])
      expect_taken_in_one_visit
      HttpApps::Gate.open(crash)
      answers = clients.map(&:value)
      expect(answers).to eq([["500", "Internal Server Error\n"], ["200", "/b\n"], ["200", "/c\n"]])
      expect(exits.size).to eq(1)
      expect(server.stats[:respawns]).to eq(1)
      expect(server_log).to include("worker 0 died")
    end

    it "answers 504 for a held request that expires, and never runs it" do
      serve(BatchApps::Gated, workers: 1, threads: 1, batch: 4, request_timeout: 1.5)
      second = signal_path("second")
      touched = signal_path("touched")
      clients = fill_batch(signal_path("first"), [["/hold", second], ["/touch", touched]])
      expect_taken_in_one_visit
      expect(clients.map(&:value).map(&:first)).to eq(%w[504 504])
      HttpApps::Gate.open(second)
      # The thread goes on to the held /touch, finds it answered, and
      # takes the next request instead.
      expect(http_get("/next").body).to eq("/next\n")
      expect(File.exist?(touched)).to be(false)
      ran = signal_path("ran")
      expect(http_get("/touch", { "X-Gate" => ran }).code).to eq("200")
      expect(File.exist?(ran)).to be(true)
    end

    it "serves a held batch to the end when the server drains" do
      serve(BatchApps::Gated, workers: 1, threads: 1, batch: 4)
      second = signal_path("second")
      clients = fill_batch(signal_path("first"), [["/hold", second], ["/b", nil], ["/c", nil]])
      expect_taken_in_one_visit
      stopping = Thread.new { server.shutdown(10) }
      # The native drain itself, not only #shutdown's flag: a gate opened
      # before it began would let the batch finish with no drain to see.
      wait_until(message: "the server never began to drain") { server.stats[:state] == :draining }
      HttpApps::Gate.open(second)
      expect(clients.map(&:value)).to eq([["200", "/hold\n"], ["200", "/b\n"], ["200", "/c\n"]])
      expect(stopping.value).to eq(0)
    end
  end

  it "gives the requests of a killed worker thread back, only the one it ran answered 500" do
    start_server(BatchApps::Gated, workers: 1, threads: 1, batch: 4, on_worker_exit: on_worker_exit)
    second = signal_path("second")
    clients = fill_batch(signal_path("first"), [["/hold", second], ["/b", nil], ["/c", nil]])
    expect_taken_in_one_visit
    member = Thread.list.find { |t| t.name == "kino-worker-slot-0" }
    member.kill
    expect(clients.map(&:value)).to eq([["500", "Internal Server Error\n"], ["200", "/b\n"], ["200", "/c\n"]])
    expect(exits.pop.last.message).to eq("a worker thread was killed")
    HttpApps::Gate.open(second)
  end
end
