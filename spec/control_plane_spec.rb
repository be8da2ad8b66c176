# frozen_string_literal: true

require "json"
require "kino"
require "open3"
require "socket"

# control_bind: the native control listener (core/control), through real
# servers and real clients (Net::HTTP, raw sockets, promtool).
RSpec.describe "the control plane" do
  include_context "supervised workers"

  let(:token) { "s3cret-token" }

  def control(path, headers = {}, port: server.control_port)
    http(port) { |h| h.get(path, headers) }
  end

  def control_json(path = "/stats", headers = {})
    response = control(path, headers)
    expect(response.code).to eq("200"), response.body
    JSON.parse(response.body)
  end

  def promtool
    @promtool ||= ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |dir| File.join(dir, "promtool") }
                     .find { |path| File.executable?(path) }
  end

  def wait_until_ready
    wait_until(message: -> { "/ready never said 200: #{server.stats}" }) { control("/ready").code == "200" }
  end

  in_each_mode do |mode|
    it "serves /metrics that promtool accepts, with counters, the queue histogram and slot series (#{mode})" do
      serve(SupervisorApps::Crashy, workers: 2, threads: 1, control_bind: "127.0.0.1:0")
      wait_until_ready
      3.times { |i| expect(http_get("/m#{i}").code).to eq("200") }
      # Counted once the last byte is handed to the socket, which may be
      # just after the client has read it.
      wait_until(message: -> { "never counted: #{server.stats}" }) { server.stats[:served] == 3 }
      response = control("/metrics")
      expect(response.code).to eq("200")
      expect(response["content-type"]).to eq("text/plain; version=0.0.4; charset=utf-8")
      body = response.body
      expect(body).to include("# TYPE kino_requests_served_total counter\nkino_requests_served_total 3\n",
                              "# TYPE kino_request_queue_seconds histogram\n",
                              "kino_request_queue_seconds_bucket{le=\"+Inf\"} 3\n",
                              "kino_request_queue_seconds_count 3\n",
                              "kino_info{mode=\"#{mode}\"} 1\n",
                              "kino_slot_requests_served_total{slot=\"1\",worker=\"1\"}")
      body.scan(/^# TYPE (\S+) counter$/).flatten.each { |name| expect(name).to end_with("_total") }
      skip "promtool is not installed here (bin/setup installs Debian's prometheus package; CI has it)" unless promtool

      out, status = Open3.capture2e(promtool, "check", "metrics", stdin_data: body)
      expect(status).to be_success, "promtool check metrics:\n#{out}\n#{body}"
    end

    it "answers /stats and /live while every worker is stuck, the stuck row's age climbing (#{mode})" do
      gate = signal_path("gate")
      serve(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "127.0.0.1:0")
      wait_until_ready
      held = request_in_background("/hold", gate)
      begin
        first = wait_until(message: -> { "the request never reached the app: #{server.stats}" }) do
          row = control_json["slots"].first
          row if row["in_flight"]
        end
        sleep 0.3
        stats = control_json
        expect(stats).to include("mode" => mode.to_s, "state" => "ready", "workers" => 1, "workers_up" => 1,
                                 "in_flight" => 1)
        expect(stats["slots"].first["busy_ms"]).to be >= first["busy_ms"] + 250
        expect(control("/live").code).to eq("200")
        expect(control("/ready").code).to eq("200")
      ensure
        open_gate(gate)
      end
      expect(held.join(SupervisorApps::HELD_TIMEOUT)&.value).to eq(["200", "/hold\n"])
      wait_until(message: "the answer never showed in /stats") { control_json["served"] == 1 }
      expect(control_json["slots"].first).to eq("slot" => 0, "worker" => 0, "served" => 1, "in_flight" => false,
                                                "busy_ms" => 0)
    end

    it "says 200 on /ready after boot and 503 through a graceful drain (#{mode})" do
      gate = signal_path("gate")
      serve(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "127.0.0.1:0")
      wait_until_ready
      port = server.control_port
      held = request_in_background("/hold", gate)
      wait_until(message: -> { "the request never reached the app: #{server.stats}" }) { requests_in_app == 1 }
      stopping = Thread.new { server.shutdown(10) }
      begin
        ready = wait_until(message: "/ready never turned 503 in the drain") do
          response = control("/ready", port: port)
          response if response.code == "503"
        end
        expect(ready.body).to eq("draining\n")
        expect(control("/live", port: port).code).to eq("200")
        expect(JSON.parse(control("/stats", port: port).body)).to include("state" => "draining", "in_flight" => 1)
      ensure
        open_gate(gate)
      end
      expect(stopping.join(10)&.value).to eq(0)
      expect(held.value).to eq(["200", "/hold\n"])
      expect { control("/live", port: port) }.to raise_error(SystemCallError) # gone after the drain
    end

    it "requires the token on /stats and /metrics and leaves the probes open (#{mode})" do
      serve(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "127.0.0.1:0", control_token: token)
      wait_until_ready
      %w[/stats /metrics].each do |path|
        [{}, { "authorization" => "Bearer wrong-token!" }, { "authorization" => "Basic #{token}" }].each do |h|
          response = control(path, h)
          expect(response.code).to eq("401"), "#{path} #{h}"
          expect(response["www-authenticate"]).to start_with("Bearer")
        end
        expect(control(path, { "authorization" => "Bearer #{token}" }).code).to eq("200")
      end
      expect(control("/live").code).to eq("200")
      expect(control("/ready").code).to eq("200")
    end
  end

  it "reads back port 0 and answers on a unix socket too" do
    path = File.join(Dir.mktmpdir("kino-control"), "control.sock")
    start_server(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "unix://#{path}")
    expect(server.control_address).to eq("unix://#{path}")
    expect(server.control_port).to be_nil
    socket = UNIXSocket.new(path)
    socket.write("GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
    response = read_response(socket)
    expect([response.status, response.body]).to eq([200, "live\n"])
    expect(response["connection"]).to eq("close")
    server.shutdown
    expect(File.exist?(path)).to be(false)

    start_server(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "127.0.0.1:0")
    expect(server.control_port).to be > 0
    expect(server.control_address).to eq("tcp://127.0.0.1:#{server.control_port}")
  end

  it "answers another client while a slow one holds a connection open" do
    start_server(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "127.0.0.1:0")
    slow = connect(server.control_port)
    slow.write("GET /stats HTTP/1.1\r\nHost: sl") # and nothing more
    started = monotonic
    expect(control("/live").code).to eq("200")
    expect(monotonic - started).to be < 1
    # The slow client is cut off at the control plane's read deadline.
    expect(closed_by_peer?(slow, timeout: 10)).to be(true)
  end

  it "answers 404, 405 and 400, always closing the connection" do
    start_server(SupervisorApps::Crashy, workers: 1, threads: 1, control_bind: "127.0.0.1:0")
    port = server.control_port
    expect(control("/nope").code).to eq("404")
    post = http(port) { |h| h.post("/stats", "") }
    expect([post.code, post["allow"]]).to eq(["405", "GET, HEAD"])
    bad = connect_with("GET /stats HTTP/9\r\n\r\n", port)
    response = read_response(bad)
    expect([response.status, response["connection"]]).to eq([400, "close"])
    expect(closed_by_peer?(bad)).to be(true)
  end

  context "from kino.rb, through exe/kino" do
    include_context "in a fresh directory"

    it "serves the control plane on a socket path relative to the config file, named in the banner" do
      config = write("deploy/kino.rb", <<~RUBY)
        workers 1
        threads 1
        control_bind "unix://control.sock"
      RUBY
      socket_path = File.join(@dir, "deploy", "control.sock")
      kino = spawn_kino("-C", config, "spec/fixtures/hello.ru", port: free_port)
      expect(kino.stdout).to include("* Control plane on unix://#{socket_path}\n")
      socket = UNIXSocket.new(socket_path)
      socket.write("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
      expect(read_response(socket).status).to eq(200)
      kino.signal("TERM")
      expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
      expect(File.exist?(socket_path)).to be(false)
    end
  end

  it "names the address when control_bind cannot be bound" do
    taken = TCPServer.new("127.0.0.1", 0)
    port = taken.addr[1]
    expect { start_server(->(_) { [200, {}, []] }, control_bind: "127.0.0.1:#{port}") }
      .to raise_error(Kino::Error, /127\.0\.0\.1:#{port}/)
  ensure
    taken&.close
  end
end
