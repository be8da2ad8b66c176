# frozen_string_literal: true

require "tmpdir"
require "kino/version"

# `exe/kino` end to end: a real process, a real port, real signals. What
# the CLI does before the launcher (flags, config errors) is in cli_spec.rb.
RSpec.describe "exe/kino" do
  let(:port) { free_port }

  around do |example|
    Dir.mktmpdir("kino-launcher") do |dir|
      @dir = dir
      example.run
    end
  end

  it "boots a rackup file, prints the banner and answers requests" do
    kino = spawn_kino("-w", "2", "-t", "3", "-m", "threaded", "spec/fixtures/hello.ru", port: port)
    banner = kino.stdout
    expect(banner).to match(/^Kino #{Regexp.escape(Kino::VERSION)} \(ruby #{Regexp.escape(RUBY_VERSION)}.*\), pid #{kino.pid}$/)
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
    expect(kino.stderr).to eq("kino: rackup file not found: #{File.join(@dir, "nowhere.ru")}\n")
    expect(kino.stdout).not_to include("Listening")
  end

  it "reports a rackup file that fails to load with its line, and exits 1" do
    kino = spawn_kino("spec/fixtures/raises.ru", port: port, wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect(status&.exitstatus).to eq(1)
    expect(kino.stderr).to eq("kino: spec/fixtures/raises.ru:5: could not load the app: ArgumentError: broken rackup\n")
  end

  it "reports a port it cannot listen on and exits 1" do
    blocker = TCPServer.new("127.0.0.1", 0)
    kino = spawn_kino("spec/fixtures/hello.ru", port: blocker.addr[1], wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect(status&.exitstatus).to eq(1)
    expect(kino.stderr).to include("kino: cannot listen on tcp://127.0.0.1:#{blocker.addr[1]}: Address already in use\n")
    expect(kino.stdout).not_to include("Listening")
  ensure
    blocker&.close
  end
end
