# frozen_string_literal: true

require "json"
require "kino"
require "open3"
require "rbconfig"

# Kino::ProcessBoard: the stats every process of a group publishes, read
# by the parent and by each process's control plane. Two real servers in
# this process share a board (rows 0 and 1), as two forked children would;
# a spawned script forks a real child (this process runs native threads,
# so it does not fork itself).
RSpec.describe Kino::ProcessBoard do
  let(:board) { described_class.new(2) }
  let(:app) { ->(_env) { [200, { "content-type" => "text/plain" }, ["ok\n"]] } }

  after { board.release }

  def start_member(index)
    start_server(app, process_board: board, process_index: index, workers: 1, threads: 2,
                      control_bind: "127.0.0.1:0")
  end

  def control(server, path)
    http(server.control_port) { |h| h.get(path) }
  end

  def row(index)
    board.stats[:processes][index]
  end

  def promtool
    ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |dir| File.join(dir, "promtool") }
       .find { |path| File.executable?(path) }
  end

  context "with two servers on rows 0 and 1" do
    let!(:first) { start_member(0) }
    let!(:second) { start_member(1) }

    before do
      wait_until(message: -> { "both rows never said ready: #{board.stats[:processes]}" }) do
        board.stats[:processes].all? { |process| process[:state] == :ready }
      end
    end

    it "shows each server's requests in its row and in the totals" do
      3.times { expect(http_get("/", port: first.port).code).to eq("200") }
      2.times { expect(http_get("/", port: second.port).code).to eq("200") }
      wait_until(message: -> { "the rows never showed 3 and 2: #{board.stats[:processes]}" }) do
        row(0)[:served] == 3 && row(1)[:served] == 2
      end
      stats = board.stats
      expect(stats[:processes].map { |process| process.slice(:index, :pid, :state, :served) })
        .to eq([{ index: 0, pid: Process.pid, state: :ready, served: 3 },
                { index: 1, pid: Process.pid, state: :ready, served: 2 }])
      expect(stats).to include(served: 5, requests_received: 5, workers_up: 2, state: :ready, group: :booting,
                               mode: :threaded, workers: 1, threads: 2)
      expect(stats[:queue_wait][:count]).to eq(5)
      expect(stats[:processes][0][:slots].size).to eq(2)
      expect(stats[:processes][0][:started_at]).to be_within(60).of(Time.now.to_f)
      expect(stats.keys).to include(*first.stats.keys)
    end

    it "answers /stats on either server's control plane for both processes" do
      3.times { http_get("/", port: first.port) }
      http_get("/", port: second.port)
      [first, second].each do |server|
        json = wait_until(message: -> { "#{server.control_port}: totals never reached 4" }) do
          body = JSON.parse(control(server, "/stats").body)
          body if body["served"] == 4
        end
        expect(json["processes"].map { |process| [process["index"], process["pid"], process["served"]] })
          .to eq([[0, Process.pid, 3], [1, Process.pid, 1]])
        expect(json).to include("state" => "ready", "group" => "booting", "workers_up" => 2)
      end
    end

    it "serves /metrics with a process label per row and the group's totals, which promtool accepts" do
      2.times { http_get("/", port: first.port) }
      http_get("/", port: second.port)
      body = wait_until(message: "the metrics never counted 3") do
        text = control(second, "/metrics").body
        text if text.include?("kino_group_requests_served_total 3\n")
      end
      expect(body).to include("kino_requests_served_total{process=\"0\"} 2\n",
                              "kino_requests_served_total{process=\"1\"} 1\n",
                              "kino_group_processes 2\n", "kino_group_processes_running 2\n",
                              "kino_group_draining 0\n",
                              "kino_ready{process=\"0\"} 1\n",
                              "kino_request_queue_seconds_count{process=\"1\"} 1\n",
                              "kino_slot_requests_served_total{process=\"0\",slot=\"0\",worker=\"0\"}")
      expect(body.scan(/^# TYPE kino_requests_served_total /).size).to eq(1)
      skip "promtool is not installed here (bin/setup installs Debian's prometheus package)" unless promtool

      out, status = Open3.capture2e(promtool, "check", "metrics", stdin_data: body)
      expect(status).to be_success, "promtool check metrics:\n#{out}\n#{body}"
    end

    it "makes /ready 503 on every server once the group drains" do
      expect([first, second].map { |server| control(server, "/ready").code }).to eq(%w[200 200])
      board.draining!
      expect(board).to be_draining
      [first, second].each do |server|
        response = control(server, "/ready")
        expect([response.code, response.body]).to eq(["503", "draining\n"])
      end
      expect(board.stats).to include(state: :draining, group: :draining)
      expect(http_get("/", port: first.port).code).to eq("200") # draining is for balancers: it still serves
    end

    it "says stopped for a server that shut down, and is empty again after a reset" do
      second.shutdown(2)
      expect(row(1)[:state]).to eq(:stopped)
      expect(row(0)[:state]).to eq(:ready)
      generation = row(1)[:generation]
      board.reset(1)
      expect(row(1)).to include(state: :empty, pid: nil, started_at: nil, served: 0, generation: generation + 1)
    end
  end

  it "refuses a board of no processes, and a server given half of its options or a row past its end" do
    expect { described_class.new(0) }.to raise_error(ArgumentError, /between 1 and/)
    quiet = { log: StringIO.new, mode: :threaded }
    expect { Kino::Server.new(app, process_board: board, **quiet).start }
      .to raise_error(ArgumentError, "process_board and process_index go together")
    expect { Kino::Server.new(app, process_board: board, process_index: 2, **quiet).start }
      .to raise_error(ArgumentError, "process_index 2 is not on a board of 2 processes")
    expect { board.reset(2) }.to raise_error(ArgumentError, /not on a board of 2/)
  end

  it "changes nothing for a server without a board" do
    server = start_server(app, control_bind: "127.0.0.1:0")
    json = JSON.parse(control(server, "/stats").body)
    expect(json).not_to include("processes", "group")
    expect(control(server, "/metrics").body).not_to include("process=", "kino_group_")
  end

  # A real fork: the child's server writes its row, the parent (which runs
  # no server) reads it through the shared mapping.
  it "lets a parent read what its forked child's server publishes" do
    script = File.join(ServerHelper::FIXTURES, "process_board_group.rb")
    Open3.popen3(RbConfig.ruby, script) do |stdin, stdout, stderr, thread|
      ask = lambda do |command|
        stdin.puts(command)
        line = stdout.gets or raise "the script ended: #{stderr.read}"
        command == "draining" ? line : JSON.parse(line)
      end
      child = JSON.parse(stdout.gets || raise("no child: #{stderr.read}"))
      expect(child["pid"]).not_to eq(thread.pid)
      stats = wait_until(message: "the child's row never said ready") do
        s = ask.call("stats")
        s if s["processes"][0]["state"] == "ready"
      end
      expect(stats["processes"][0]["pid"]).to eq(child["pid"])
      2.times { expect(http_get("/", port: child["port"]).body).to eq("child #{child['pid']}\n") }
      wait_until(message: "the parent never saw 2 served") { ask.call("stats")["served"] == 2 }
      expect(ask.call("draining")).to eq("ok\n")
      expect(http(child["control_port"]) { |h| h.get("/ready") }.code).to eq("503")
      final = ask.call("stop")
      expect(final["processes"][0]).to include("state" => "stopped", "served" => 2, "pid" => child["pid"])
      expect(thread.value).to be_success
    end
  end
end
