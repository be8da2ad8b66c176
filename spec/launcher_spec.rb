# frozen_string_literal: true

require "kino/version"

# `exe/kino` end to end: a real process, a real port, real signals. What
# the CLI does before the launcher (flags, config errors) is in cli_spec.rb.
RSpec.describe "exe/kino" do
  let(:port) { free_port }

  include_context "in a fresh directory"

  it "boots a rackup file, prints the banner and answers requests" do
    kino = spawn_kino("-w", "2", "-t", "3", "-m", "threaded", "spec/fixtures/hello.ru", port: port)
    banner = kino.stdout
    version = Regexp.escape(Kino::VERSION)
    expect(banner).to match(/^Kino #{version} \(ruby #{Regexp.escape(RUBY_VERSION)}.*\), pid #{kino.pid}$/)
    expect(banner).to include("* Mode: threaded, 2 workers x 3 threads")
    expect(banner).to include("* Listening on tcp://127.0.0.1:#{port}\n")

    response = http_get("/", port: port)
    expect([response.code, response.body]).to eq(["200", "Hello from Kino\n"])

    kino.signal("TERM")
    status = kino.wait(timeout: 10)
    expect(status&.exitstatus).to eq(0)
    expect(kino.stdout).to include("- Gracefully stopping (SIGTERM)", "- Goodbye!")
    expect(kino.stderr).to eq("")
  end

  %w[threaded ractor].each do |mode|
    it "finishes the request in flight on SIGTERM, then exits 0 (#{mode} mode)" do
      started = File.join(@dir, "started")
      kino = spawn_kino("-m", mode, "-w", "1", "-t", "2", "spec/fixtures/slow.ru",
                        port: port, env: { "KINO_SPEC_STARTED_FILE" => started })
      request = Thread.new do
        response = http_get("/slow", port: port)
        [response.code, response.body]
      end
      wait_until(message: -> { "/slow never started\nstdout:\n#{kino.stdout}\nstderr:\n#{kino.stderr}" }) do
        File.exist?(started)
      end
      kino.signal("TERM")

      expect(request.value).to eq(["200", "slow done\n"])
      status = kino.wait(timeout: 10)
      expect(status&.exitstatus).to eq(0)
      expect(kino.stdout).to include("* Mode: #{mode}", "- Goodbye!")
      expect(kino.stderr).not_to include("cut off")
    ensure
      request&.join(ServerHelper::IO_TIMEOUT)
    end
  end

  it "exits at once on a second SIGTERM while a graceful stop waits for a long request" do
    started = File.join(@dir, "started")
    kino = spawn_kino("-m", "threaded", "-w", "1", "-t", "1", "spec/fixtures/slow.ru",
                      port: port, env: { "KINO_SPEC_STARTED_FILE" => started, "KINO_SPEC_SLOW_SECONDS" => "30" })
    request = Thread.new do
      http_get("/slow", port: port)
    rescue EOFError, SystemCallError, Net::ReadTimeout => e
      e
    end
    wait_until(message: -> { "/slow never started\nstderr:\n#{kino.stderr}" }) { File.exist?(started) }
    kino.signal("TERM")
    kino.wait_for_stdout(/Gracefully stopping/)
    expect(kino.exited?).to be(false) # the drain waits for /slow (30 s)
    second = monotonic
    kino.signal("TERM")
    status = kino.wait(timeout: 5)
    expect(monotonic - second).to be < 3
    expect(status&.exitstatus).to eq(1)
    expect(request.join(ServerHelper::IO_TIMEOUT)&.value).not_to be_a(Net::HTTPResponse)
  ensure
    request&.join(ServerHelper::IO_TIMEOUT)
  end

  it "gives the app Kino.sleep" do
    kino = spawn_kino("-w", "1", "-t", "1", "spec/fixtures/kino_sleep.ru", port: port)
    response = http_get("/", port: port)
    expect([response.code, response.body]).to eq(["200", "slept\n"])
    expect(kino.stderr).to eq("")
  end

  %w[TERM INT].each do |signal|
    it "exits 0 within 2 seconds of SIG#{signal} when idle" do
      kino = spawn_kino("-w", "1", "-t", "1", "spec/fixtures/hello.ru", port: port)
      signalled = monotonic
      kino.signal(signal)
      status = kino.wait(timeout: 10)
      expect(status&.exitstatus).to eq(0)
      expect(monotonic - signalled).to be < 2.0
      expect(kino.stdout).to include("- Gracefully stopping (SIG#{signal})")
    end
  end

  describe "--check" do
    def check(rackup)
      kino = spawn_kino("--check", rackup, wait: false)
      status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
      [status&.exitstatus, kino.stdout.lines(chomp: true), kino.stderr]
    end

    # Each: the rackup file, the blocker line, how its hint starts.
    {
      "a lambda capturing a Hash, naming the variable, where it is, and a fix" =>
        ["spec/fixtures/capture.ru",
         "  - app (captured variable `counts`): holds a Hash, which is not shareable (spec/fixtures/capture.ru:7)",
         "    hint: freeze it where it is defined (`counts = Ractor.make_shareable(...)`)"],
      "an app with a class-level instance variable holding a Hash, naming it" =>
        ["spec/fixtures/class_ivar.ru",
         "  - KinoFixtureClassIvarApp.@cache: holds a Hash; worker ractors cannot read it " \
         "(spec/fixtures/class_ivar.ru:6)",
         "    hint: make it shareable (Ractor.make_shareable)"]
    }.each do |what, (rackup, blocker, hint)|
      it "exits 1 for #{what}" do
        code, lines, err = check(rackup)
        expect([code, err, lines.size]).to eq([1, "", 4])
        expect(lines[0]).to eq("kino --check: #{rackup} cannot run in :ractor mode (1 blocker):")
        expect(lines[1]).to eq(blocker)
        expect(lines[2]).to start_with(hint)
        expect(lines[3]).to eq("With `mode :auto` (the default) it runs in :threaded mode instead.")
      end
    end

    it "exits 0 for a middleware stack frozen with freeze_app, which :ractor mode then serves" do
      code, lines, err = check("spec/fixtures/stack.ru")
      expect([code, lines, err]).to eq([0, ["kino --check: spec/fixtures/stack.ru can run in :ractor mode"], ""])

      kino = spawn_kino("-m", "ractor", "-w", "1", "spec/fixtures/stack.ru", port: port)
      expect(kino.stdout).to include("* Mode: ractor, 1 workers x 1 threads")
      response = http_get("/page", port: port)
      expect([response.code, response.body, response["content-length"]]).to eq(["200", "stacked\n", "8"])
      expect(response["etag"]).to match(%r{\AW/"\h{32}"\z})
    end
  end

  describe "mode choice at boot" do
    it "falls back from :auto to :threaded with a one-line warning naming the reason" do
      kino = spawn_kino("-w", "1", "spec/fixtures/capture.ru", port: port)
      expect(kino.stdout).to include("* Mode: threaded, 1 workers x 3 threads")
      # Written before the banner, but read from its own pipe.
      wait_until(message: -> { "no warning on stderr: #{kino.stderr.inspect}" }) { kino.stderr.end_with?("\n") }
      expect(kino.stderr).to eq("#{said_by(pid: kino.pid)}running in :threaded mode: app (captured variable " \
                                "`counts`): holds a Hash, " \
                                "which is not shareable (`kino --check` lists every blocker)\n")
      expect(Array.new(2) { http_get("/", port: port).body }).to eq(["hit 1\n", "hit 2\n"])
    end

    it "refuses to start :ractor mode for an app that cannot be shared, before listening, and exits 1" do
      kino = spawn_kino("-m", "ractor", "spec/fixtures/class_ivar.ru", port: port, wait: false)
      status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
      expect(status&.exitstatus).to eq(1)
      expect(kino.stderr.lines.first)
        .to eq("#{said_by(pid: kino.pid)}the app cannot run in :ractor mode (1 blocker):\n")
      expect(kino.stderr).to include("  - KinoFixtureClassIvarApp.@cache: holds a Hash; worker ractors cannot read it")
      expect(kino.stdout).not_to include("Listening")
    end
  end

  it "exits 0 within a second of SIGTERM with ractor workers parked and nothing in flight" do
    kino = spawn_kino("-m", "ractor", "-w", "2", "spec/fixtures/hello.ru", port: port)
    expect(kino.stdout).to include("* Mode: ractor, 2 workers x 1 threads")
    # The workers are up: they answer, then park in the native queue again.
    http(port) { |h| 4.times { expect(h.get("/").body).to eq("Hello from Kino\n") } }

    waiter = Thread.new do
      _, status = Process.wait2(kino.pid)
      [status, monotonic]
    end
    signalled = monotonic
    kino.signal("TERM")
    expect(waiter.join(10)).not_to be_nil, "kino did not exit within 10 s of SIGTERM:\n#{kino.stdout}\n#{kino.stderr}"
    status, exited_at = waiter.value
    expect(status.exitstatus).to eq(0)
    expect(exited_at - signalled).to be < 1.0
  end

  it "honours port, workers and threads from a -C config file, and writes and removes its pidfile" do
    pidfile = File.join(@dir, "kino.pid")
    kino = spawn_kino("-C", "spec/fixtures/config/custom.rb", "spec/fixtures/hello.ru",
                      env: { "KINO_SPEC_PORT" => port.to_s, "KINO_SPEC_PIDFILE" => pidfile })
    expect(kino.stdout).to include("* Mode: threaded, 1 workers x 2 threads, 1 I/O threads",
                                   "* Listening on tcp://127.0.0.1:#{port}\n")
    expect(File.read(pidfile)).to eq("#{kino.pid}\n")
    expect(http_get("/", port: port).body).to eq("Hello from Kino\n")

    kino.signal("TERM")
    expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
    expect(File.exist?(pidfile)).to be(false)
  end

  it "lets flags override the config file" do
    kino = spawn_kino("-C", "spec/fixtures/config/custom.rb", "-t", "5", "spec/fixtures/hello.ru",
                      env: { "KINO_SPEC_PORT" => port.to_s })
    expect(kino.stdout).to include("1 workers x 5 threads")
  end

  it "reports a config file that raises with its file and line, and exits 1" do
    kino = spawn_kino("-C", "spec/fixtures/config/raises.rb", "spec/fixtures/hello.ru", port: port, wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect(status&.exitstatus).to eq(1)
    expect(kino.stderr).to eq(%(kino: spec/fixtures/config/raises.rb:6: invalid value for Integer(): "not a number" ) +
                              "(ArgumentError)\n")
    expect(kino.stdout).to eq("")
  end

  it "reports a missing rackup file and exits 1" do
    kino = spawn_kino(File.join(@dir, "nowhere.ru"), port: port, wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect(status&.exitstatus).to eq(1)
    expect(kino.stderr).to eq("#{said_by(pid: kino.pid)}rackup file not found: #{File.join(@dir, 'nowhere.ru')}\n")
    expect(kino.stdout).not_to include("Listening")
  end

  it "reports a rackup file that fails to load with its line, and exits 1" do
    kino = spawn_kino("spec/fixtures/raises.ru", port: port, wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect(status&.exitstatus).to eq(1)
    expect(kino.stderr).to eq("#{said_by(pid: kino.pid)}spec/fixtures/raises.ru:5: could not load the app: " \
                              "ArgumentError: broken rackup\n")
  end

  it "reports a port it cannot listen on and exits 1" do
    blocker = TCPServer.new("127.0.0.1", 0)
    kino = spawn_kino("spec/fixtures/hello.ru", port: blocker.addr[1], wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect(status&.exitstatus).to eq(1)
    expect(kino.stderr)
      .to include("#{said_by(pid: kino.pid)}cannot listen on tcp://127.0.0.1:#{blocker.addr[1]}: " \
                  "Address already in use\n")
    expect(kino.stdout).not_to include("Listening")
  ensure
    blocker&.close
  end
end
