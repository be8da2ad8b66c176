# frozen_string_literal: true

require "net/http"
require "socket"
require "kino/process_group"

# `processes N` (Kino::ProcessGroup, Kino::ProcessChild): real `kino`
# processes, one parent forking children that serve the port it bound.
RSpec.describe Kino::ProcessGroup do
  let(:dir) { Dir.mktmpdir("kino-procs") }
  let(:boots) { File.join(dir, "boots") }
  let(:hooks) { File.join(dir, "hooks") }
  let(:pidfile) { File.join(dir, "kino.pid") }
  let(:env) { { "KINO_SPEC_BOOTS" => boots, "KINO_SPEC_HOOKS" => hooks, "KINO_SPEC_PIDFILE" => pidfile } }

  after do
    stop_kino_processes
    FileUtils.rm_rf(dir)
  end

  def start_group(*args, env: {}, mode: "threaded")
    spawn_kino("-C", "spec/fixtures/config/processes.rb", "-p", "0", "-m", mode, *args,
               "spec/fixtures/processes.ru", env: self.env.merge(env))
  end

  def port_of(kino)
    Integer(kino.stdout[%r{^\* Listening on tcp://127\.0\.0\.1:(\d+)$}, 1])
  end

  def children_of(kino)
    kino.stdout[/pids ([\d, ]+)$/, 1].split(", ").map { |pid| Integer(pid) }
  end

  def served_by(port, path = "/")
    response = Net::HTTP.start("127.0.0.1", port, open_timeout: 5, read_timeout: 10) { |h| h.get(path) }
    [response.code, Integer(response.body[/\Apid (\d+)\n\z/, 1])]
  end

  # Fresh connections until every one of +pids+ has answered.
  def pids_seen(port, pids)
    seen = Set.new
    wait_until(timeout: 10, message: -> { "only #{seen.to_a} of #{pids} answered" }) do
      code, pid = served_by(port)
      seen << pid if code == "200"
      (pids - seen.to_a).empty?
    end
    seen
  end

  def lines(path)
    File.exist?(path) ? File.readlines(path, chomp: true) : []
  end

  it "forks two processes that serve one port; the parent holds the pidfile and runs before_fork" do
    kino = start_group
    port = port_of(kino)
    children = children_of(kino)
    expect(children.size).to eq(2)
    expect(kino.stdout).to include("* Processes: 2 processes x 1 workers x 4 threads (mode threaded)")
    expect(pids_seen(port, children).to_a).to match_array(children)
    expect(children).not_to include(kino.pid)
    expect(File.read(pidfile).strip).to eq(kino.pid.to_s)

    expect(lines(boots)).to eq(["boot #{kino.pid}"]) # preloaded: one boot, in the parent
    hook_lines = lines(hooks)
    expect(hook_lines.grep(/before_fork/)).to eq(["before_fork #{kino.pid}"] * 2)
    after_fork = children.each_with_index.map { |pid, i| "after_fork #{i} #{pid}" }
    expect(hook_lines.grep(/after_fork/)).to match_array(after_fork)

    kino.signal("TERM")
    expect(kino.wait(timeout: 20)&.exitstatus).to eq(0)
    expect(kino.stdout).to include("- Goodbye!")
    expect(File.exist?(pidfile)).to be(false)
    children.each { |pid| expect { Process.kill(0, pid) }.to raise_error(Errno::ESRCH) }
  end

  it "boots the app in each child with preload_app false, and never in the parent" do
    kino = start_group(env: { "KINO_SPEC_PRELOAD" => "false" })
    children = children_of(kino)
    pids_seen(port_of(kino), children)
    expect(lines(boots)).to match_array(children.map { |pid| "boot #{pid}" })
    expect(kino.stdout).to include("(mode chosen in each process)")
  end

  it "replaces a child killed under load; only that child's requests fail" do
    kino = start_group
    port = port_of(kino)
    victim, survivor = children_of(kino)
    pids_seen(port, [victim, survivor])

    results = Queue.new
    stop = false
    clients = Array.new(4) do
      Thread.new do
        until stop
          begin
            results << served_by(port, "/slow")
          rescue StandardError => e
            results << [:failed, e.class]
          end
        end
      end
    end
    wait_until(timeout: 10) { results.size >= 4 }
    Process.kill("KILL", victim)
    wait_until(timeout: 15, message: -> { "no replacement\nstderr:\n#{kino.stderr}" }) do
      kino.stderr.match?(/process 0 \(pid #{victim}\) was killed by SIGKILL after [\d.]+s; replacing in [\d.]+s/)
    end
    replacement = nil
    wait_until(timeout: 15, message: -> { "the replacement never served\nstderr:\n#{kino.stderr}" }) do
      code, pid = served_by(port)
      replacement = pid if code == "200" && ![victim, survivor].include?(pid)
    end
    stop = true
    clients.each(&:join)
    all = Array.new(results.size) { results.pop }
    failed = all.count { |r| r.first == :failed }
    # Each client thread had at most one request open on the victim.
    expect(failed).to be <= clients.size
    expect(all.count { |r| r.first == "200" }).to be > failed
    expect(replacement).not_to be_nil
    expect(lines(hooks).grep(/after_fork 0/).size).to eq(2) # the replacement ran after_fork with index 0
  end

  it "drains every child on SIGTERM: each request begun gets a whole 200" do
    kino = start_group(env: { "KINO_SPEC_SLOW" => "1.0" })
    port = port_of(kino)
    pids_seen(port, children_of(kino))
    in_flight = Array.new(6) { Thread.new { served_by(port, "/slow") } }
    wait_until(timeout: 10) { in_flight.all? { |t| t.status == "sleep" || !t.alive? } }
    sleep 0.3 # the requests reach the children; nothing signals "accepted" to a client
    kino.signal("TERM")
    expect(in_flight.map { |t| t.value.first }).to eq(["200"] * 6)
    expect(kino.wait(timeout: 20)&.exitstatus).to eq(0)
  end

  it "ends every child at once on a second TERM and exits non-zero" do
    kino = start_group(env: { "KINO_SPEC_SLOW" => "30" })
    port = port_of(kino)
    children = children_of(kino)
    pids_seen(port, children)
    stuck = Thread.new { served_by(port, "/slow") rescue :cut_off } # rubocop:disable Style/RescueModifier
    sleep 0.3
    kino.signal("TERM")
    wait_until { kino.stdout.include?("Gracefully stopping") }
    kino.signal("TERM")
    status = kino.wait(timeout: 5)
    expect(status&.exitstatus).to eq(1)
    wait_until(timeout: 5) do
      children.all? do |pid|
        Process.kill(0, pid)
        false
      rescue Errno::ESRCH
        true
      end
    end
    stuck.join(5)
  end

  it "runs N processes x :ractor workers" do
    kino = start_group("-w", "2", "-t", "1", mode: "ractor")
    expect(kino.stdout).to include("2 processes x 2 workers x 1 threads (mode ractor)")
    pids_seen(port_of(kino), children_of(kino))
  end

  it "falls back to :threaded in every child for an unshareable app in :auto, saying why once" do
    kino = spawn_kino("-C", "spec/fixtures/config/processes.rb", "-p", "0", "spec/fixtures/memo.ru", env: env)
    port = port_of(kino)
    expect(kino.stdout).to include("(mode threaded)")
    children_of(kino).each { |pid| wait_until(timeout: 10) { http_get("/", port: port).body == "hello, #{pid}\n" } }
    expect(kino.stderr.scan("running in :threaded mode").size).to eq(1)
  end

  it "keeps a preloaded Kino::Logger writing from both children" do
    log = File.join(dir, "app.log")
    kino = start_group(env: { "KINO_APP_LOG" => log })
    children = children_of(kino)
    pids_seen(children_of(kino).then { port_of(kino) }, children)
    wait_until(timeout: 10, message: -> { "log:\n#{lines(log).join("\n")}" }) do
      children.all? { |pid| lines(log).any? { |line| line.include?("served / in #{pid}") } }
    end
    # The parent serves nothing: no I/O, worker or control thread, only
    # the logger's writer, started again after each fork.
    threads = Dir.glob("/proc/#{kino.pid}/task/*/comm").map { |path| File.read(path).strip }
    expect(threads.grep(/\Akino-/)).to eq(["kino-log-writer"]) if File.directory?("/proc/#{kino.pid}/task")
  end

  it "serves control_bind from the children on one socket the parent bound" do
    kino = start_group("-b", "tcp://127.0.0.1:0", env: { "KINO_SPEC_CONTROL" => "tcp://127.0.0.1:0" })
    control = Integer(kino.stdout[%r{^\* Control plane on tcp://127\.0\.0\.1:(\d+)$}, 1])
    children = children_of(kino)
    pids_seen(port_of(kino), children)
    3.times do
      response = Net::HTTP.start("127.0.0.1", control, open_timeout: 5, read_timeout: 5) { |h| h.get("/live") }
      expect(response.code).to eq("200")
    end
    expect(kino.stderr).not_to include("cannot listen")
    expect(children.all? { |pid| Process.kill(0, pid) == 1 }).to be(true) # none died binding it again
  end

  it "backs off longer each time a child dies soon after it started" do
    kino = start_group(env: { "KINO_SPEC_FAILING_INDEX" => "1" })
    port = port_of(kino)
    wait_until(timeout: 20, message: -> { "no growing back-off\nstderr:\n#{kino.stderr}" }) do
      kino.stderr.scan(/process 1 \(pid \d+\) exited with status 1 after [\d.]+s; replacing in ([\d.]+)s/).size >= 2
    end
    delays = kino.stderr.scan(/process 1 \(pid \d+\) exited with status 1 after [\d.]+s; replacing in ([\d.]+)s/)
    expect(delays.flatten.first(2).map { |d| Float(d) }).to eq([1.0, 2.0])
    expect(kino.stderr).to include("process 1: RuntimeError: cannot reach the database")
    expect(served_by(port).first).to eq("200") # process 0 serves on
  end

  it "logs one stats line on SIGUSR1 with every child's requests in the totals" do
    kino = start_group
    children = children_of(kino)
    pids_seen(port_of(kino), children)
    # Children publish their rows every 250 ms: ask until the totals have
    # caught up with the requests served.
    wait_until(message: -> { "stderr:\n#{kino.stderr}" }) do
      kino.signal("USR1")
      sleep 0.3
      kino.stderr.lines.grep(/stats pid=#{kino.pid} processes=2 mode=threaded workers=1 threads=4 /)
          .any? { |line| line[/ served=(\d+)/, 1].to_i >= children.size }
    end
  end
end
