# frozen_string_literal: true

require "kino"

# The app is a module, shareable, so the examples run in :threaded and
# :ractor mode alike.
module LanesApps
  # Waits at the X-Gate file if there is one (HttpApps::Gate), then
  # /crash raises an Exception that is not a StandardError (which ends
  # the worker), X-Sleep sleeps, and anything else answers with its path
  # and the worker thread that served it.
  module App
    def self.call(env)
      HttpApps::Gate.wait(env["HTTP_X_GATE"]) if env["HTTP_X_GATE"]
      raise Exception, "worker down on purpose" if env["PATH_INFO"] == "/crash" # rubocop:disable Lint/RaiseException

      Kino.sleep(Float(env["HTTP_X_SLEEP"])) if env["HTTP_X_SLEEP"]
      HttpApps::Gate.open(env["HTTP_X_RAN"]) if env["HTTP_X_RAN"]
      [200, { "content-type" => "text/plain" }, ["#{env['PATH_INFO']} #{Thread.current.name}\n"]]
    end
  end
end

# `lanes true`: a lane of 4 requests per worker thread in front of the
# shared queue (core/handoff/lanes). Every example checks that the lanes
# were in use (stats: lane_dispatched, each slot's lane_depth), then that
# no request is lost, stranded or run when it should not be.
RSpec.describe "Lanes" do
  include SupervisorHelpers

  # Sends GET +path+ on a connection of its own with +headers+; returns a
  # thread whose value is the response once it is in, and when it came.
  def send_request(path, headers = {})
    socket = connect
    wire_buffer(socket) # created here, not concurrently in the threads
    extra = headers.map { |name, value| "#{name}: #{value}\r\n" }.join
    socket.write("GET #{path} HTTP/1.1\r\nHost: x\r\n#{extra}Connection: close\r\n\r\n")
    Thread.new do
      response = read_response(socket, timeout: SupervisorApps::HELD_TIMEOUT)
      [response, monotonic]
    end
  end

  # Whether worker threads hold +count+ requests they have not answered,
  # with nothing queued. Not requests_in_app: in_flight counts a request a
  # moment before it reaches a lane or the queue, so in_flight - queued
  # may say 1 before /busy is anywhere a worker can take it from.
  def taken_by_workers?(count)
    stats = server.stats
    stats[:slots].count { |row| row[:in_flight] } == count && stats[:queued].zero?
  end

  def lane_depths
    server.stats[:slots].map { |row| row[:lane_depth] }
  end

  # Waits until the lanes hold +count+ requests and the shared queue none.
  def wait_for_lanes(count)
    wait_until(message: -> { "lanes never held #{count}: #{lane_depths} #{server.stats.slice(:queued)}" }) do
      lane_depths.sum == count && server.stats[:queued] == count
    end
  end

  in_each_mode do |mode|
    threads = mode == :threaded ? 2 : 1

    it "answers many concurrent keep-alive requests, every one, through the lanes" do
      serve(LanesApps::App, lanes: true, workers: 2, threads: threads)
      # Each request takes the app a moment, and there are two clients more
      # than worker threads: requests keep arriving while workers serve
      # (awake), and the queue is often empty then, which is when one goes
      # to a lane (a backlog stays in the queue).
      count = (2 * threads) + 2
      clients = Array.new(count) do |c|
        Thread.new do
          http do |h|
            Array.new(40) { |i| h.get("/c#{c}-#{i}", "X-Sleep" => "0.002") }.map { |r| [r.code, r.body.split.first] }
          end
        end
      end
      answers = clients.map(&:value)
      answers.each_with_index do |list, c|
        expect(list).to eq(Array.new(40) { |i| ["200", "/c#{c}-#{i}"] })
      end
      stats = server.stats
      expect(stats[:lanes]).to be(true)
      expect(stats[:lane_dispatched]).to be_positive
      wait_until(message: -> { "not all counted: #{server.stats}" }) { server.stats[:served] == count * 40 }
    end

    it "keeps queue_depth and queue_timeout past the lanes' room: 503, connection: close, nothing hangs" do
      serve(LanesApps::App, lanes: true, workers: 1, threads: 1, queue_depth: 1, queue_timeout: 0.3)
      gate = signal_path("gate")
      busy = send_request("/busy", "X-Gate" => gate)
      wait_until(message: "the worker never took /busy") { taken_by_workers?(1) }
      # The worker is awake (in the app): its lane takes the next four.
      laned = Array.new(4) do |i|
        send_request("/lane#{i}").tap { wait_for_lanes(i + 1) }
      end
      queued = send_request("/queued") # the lane is full: the shared queue's one place
      wait_until(message: "/queued never reached the queue") { server.stats[:queued] == 5 }
      refused = Array.new(2) { |i| send_request("/refused#{i}") }.map { |t| t.value.first }
      expect(refused.map(&:status)).to eq([503, 503])
      expect(refused.map { |r| r["retry-after"] }).to all(eq("1"))
      expect(refused.map { |r| r["connection"] }).to all(eq("close"))
      expect(server.stats[:rejected]).to eq(2)

      open_gate(gate)
      served = [busy, *laned, queued].map { |t| t.value.first }
      expect(served.map(&:status)).to all(eq(200))
      expect(served.map { |r| r.body.split.first }).to eq(%w[/busy /lane0 /lane1 /lane2 /lane3 /queued])
      expect(http_get("/after").code).to eq("200")
    end

    it "serves what a dead worker's lane held: only its running request gets the 500" do
      serve(LanesApps::App, lanes: true, workers: 2, threads: 1)
      crash_gate = signal_path("crash")
      hold_gate = signal_path("hold")
      crash = send_request("/crash", "X-Gate" => crash_gate)
      wait_until(message: "/crash never reached the app") { taken_by_workers?(1) }
      held = send_request("/held", "X-Gate" => hold_gate)
      wait_until(message: "/held never reached the app") { taken_by_workers?(2) }
      # Both workers are in the app: the next six wait in their lanes.
      waiting = Array.new(6) { |i| send_request("/waiting#{i}").tap { wait_for_lanes(i + 1) } }
      expect(lane_depths.sort).to eq([3, 3])

      open_gate(crash_gate) # the worker holding /crash dies with three in its lane
      expect(crash.value.first.status).to eq(500)
      # Its lane went to the shared queue, and the other worker still holds
      # /held: the replacement serves those three, then steals the three
      # behind /held.
      wait_until(message: -> { "#{waiting.count(&:alive?)} unanswered: #{lane_depths}\n#{server_log}" }) do
        waiting.none?(&:alive?)
      end
      responses = waiting.map { |t| t.value.first }
      expect(responses.map(&:status)).to eq([200] * 6)
      expect(responses.map { |r| r.body.split.last }.uniq.size).to eq(1) # all the replacement's
      expect(held).to be_alive
      expect(server.stats[:respawns]).to eq(1)

      open_gate(hold_gate)
      expect(held.value.first.status).to eq(200)
    end

    it "lets an idle worker steal what waits behind a slow request, well before the slow one ends" do
      serve(LanesApps::App, lanes: true, workers: mode == :threaded ? 1 : 2, threads: threads)
      slow = send_request("/slow", "X-Sleep" => "1.5")
      wait_until(message: "/slow never reached the app") { taken_by_workers?(1) }
      started = monotonic
      before = server.stats[:lane_dispatched]
      quick = Array.new(3) { |i| send_request("/quick#{i}") }
      done = quick.map(&:value)
      expect(done.map { |response, _at| response.status }).to eq([200] * 3)
      expect(done.map { |_response, at| at - started }.max).to be < 0.75
      expect(server.stats[:lane_dispatched] - before).to be_positive
      response, finished = slow.value
      expect(response.status).to eq(200)
      expect(finished - started).to be > 1.0
    end

    it "drains the lanes on stop" do
      serve(LanesApps::App, lanes: true, workers: 1, threads: 1)
      gate = signal_path("gate")
      busy = send_request("/busy", "X-Gate" => gate)
      wait_until(message: "the worker never took /busy") { taken_by_workers?(1) }
      laned = Array.new(3) { |i| send_request("/lane#{i}").tap { wait_for_lanes(i + 1) } }
      stopping = Thread.new { server.shutdown(10) }
      wait_until(message: "the stop never began") { server.stats[:state] == :draining }
      open_gate(gate)
      stopping.join(10)
      expect(stopping).not_to be_alive
      responses = [busy, *laned].map { |t| t.value.first }
      expect(responses.map(&:status)).to eq([200] * 4)
      expect(responses.map { |r| r.body.split.first }).to eq(%w[/busy /lane0 /lane1 /lane2])
    end

    it "answers 504 to a request whose request_timeout passed in a lane, and never runs it" do
      serve(LanesApps::App, lanes: true, workers: 1, threads: 1, request_timeout: 0.3)
      gate = signal_path("gate")
      ran = signal_path("ran")
      busy = send_request("/busy", "X-Gate" => gate)
      wait_until(message: "the worker never took /busy") { taken_by_workers?(1) }
      late = send_request("/late", "X-Ran" => ran)
      wait_for_lanes(1)
      expect(late.value.first.status).to eq(504)
      open_gate(gate)
      expect(busy.value.first.status).to eq(504) # it ran past request_timeout too
      wait_until(message: "the lane was never emptied") { lane_depths.sum.zero? }
      expect(http_get("/after").code).to eq("200") # the worker went past /late
      expect(File.exist?(ran)).to be(false)
    end
  end

  it "says at boot that batch has no effect with lanes, and serves" do
    start_server(->(_env) { [200, {}, ["ok\n"]] }, lanes: true, batch: 4, mode: :threaded)
    expect(server_log).to eq("#{said_by}warning: `batch 4` has no effect with `lanes true`\n")
    expect(http_get("/").body).to eq("ok\n")
  end
end
