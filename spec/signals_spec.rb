# frozen_string_literal: true

require "kino/version"

# Signals a running `exe/kino` gets from an operator, a process manager or
# a closing terminal. Only TERM, INT and QUIT stop it (gracefully); every
# other signal it traps leaves it serving.
RSpec.describe "exe/kino and signals" do
  let(:port) { free_port }

  def hello(kino)
    response = http_get("/", port: port)
    [response.code, response.body]
  rescue SystemCallError, IOError, Net::ReadTimeout => e
    raise "kino stopped answering (#{e.class}: #{e.message})\nstdout:\n#{kino.stdout}\nstderr:\n#{kino.stderr}"
  end

  def stops_gracefully(kino, signal = "TERM")
    kino.signal(signal)
    expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
    expect(kino.stdout).to include("- Gracefully stopping (SIG#{signal})", "- Goodbye!")
  end

  %w[threaded ractor].each do |mode|
    it "logs one stats line on SIGUSR1 and keeps serving (#{mode} mode)" do
      kino = spawn_kino("-m", mode, "-w", "2", "-t", "1", "spec/fixtures/hello.ru", port: port)
      3.times { expect(hello(kino)).to eq(["200", "Hello from Kino\n"]) }

      kino.signal("USR1")
      wait_until(message: -> { "no stats line after SIGUSR1\nstderr:\n#{kino.stderr}" }) do
        kino.stderr.include?("stats")
      end
      expect(kino.exited?).to be(false)
      lines = kino.stderr.lines.grep(/stats/)
      expect(lines.size).to eq(1)
      head = /\A#{Regexp.escape(said_by(pid: kino.pid))}stats pid=#{kino.pid} mode=#{mode} workers=2 threads=1 batch=1/
      gauges = /connections_open=\d+ queued=0 in_flight=0/
      counts = /served=3 rejected=0 timeouts=0 parse_errors=0 respawns=0 quarantined=0 log_dropped=0 logger_dropped=0/
      expect(lines.first).to match(/#{head} #{gauges} #{counts}\n\z/)

      expect(hello(kino)).to eq(["200", "Hello from Kino\n"])
      kino.signal("USR1")
      wait_until(message: -> { "no second stats line\nstderr:\n#{kino.stderr}" }) do
        kino.stderr.lines.grep(/stats/).size == 2
      end
      expect(kino.stderr.lines.grep(/stats/).last).to include(" served=4 ")
      stops_gracefully(kino)
    end
  end

  {
    "HUP" => "SIGHUP: reopened 0 log file(s); " \
             "still serving (TERM, INT or QUIT stop the server)\n",
    "USR2" => "SIGUSR2 ignored: restarting in place is not supported yet; " \
              "still serving (TERM, INT or QUIT stop the server)\n",
    "ALRM" => "SIGALRM ignored; still serving (TERM, INT or QUIT stop the server)\n"
  }.each do |signal, line|
    it "says so in one line on SIG#{signal} and keeps serving" do
      kino = spawn_kino("-m", "threaded", "-w", "1", "-t", "1", "spec/fixtures/hello.ru", port: port)
      kino.signal(signal)
      wait_until(message: -> { "nothing logged for SIG#{signal}\nstderr:\n#{kino.stderr}" }) do
        kino.stderr.end_with?("\n")
      end
      expect(kino.stderr).to eq(said_by(pid: kino.pid) + line)
      expect(kino.exited?).to be(false)
      expect(hello(kino)).to eq(["200", "Hello from Kino\n"])
      stops_gracefully(kino)
    end
  end

  it "ignores SIGTTIN and SIGTTOU (the kernel's job-control signals) and keeps serving" do
    kino = spawn_kino("-m", "threaded", "-w", "1", "-t", "1", "spec/fixtures/hello.ru", port: port)
    %w[TTIN TTOU].each { |signal| kino.signal(signal) }
    expect(hello(kino)).to eq(["200", "Hello from Kino\n"])
    # A stopped process would not answer; one that ended would not be here.
    expect(kino.exited?).to be(false)
    stops_gracefully(kino)
  end

  it "stops gracefully on SIGQUIT, finishing the request in flight (ractor mode)" do
    started = signal_path("started")
    kino = spawn_kino("-m", "ractor", "-w", "1", "-t", "1", "spec/fixtures/slow.ru",
                      port: port, env: { "KINO_SPEC_STARTED_FILE" => started })
    request = Thread.new do
      response = http_get("/slow", port: port)
      [response.code, response.body]
    end
    wait_for_file(started, message: -> { "/slow never started\nstderr:\n#{kino.stderr}" })
    stops_gracefully(kino, "QUIT")
    expect(request.value).to eq(["200", "slow done\n"])
  ensure
    request&.join(ServerHelper::IO_TIMEOUT)
  end

  it "keeps serving through a burst of signals that do not stop it, then stops on TERM" do
    kino = spawn_kino("-m", "ractor", "-w", "1", "-t", "1", "spec/fixtures/hello.ru", port: port)
    # The kernel merges a signal sent again before the first is delivered,
    # so how many lines come out is not fixed; that each is whole is.
    5.times { %w[USR1 HUP USR2 ALRM TTIN TTOU].each { |signal| kino.signal(signal) } }
    expect(hello(kino)).to eq(["200", "Hello from Kino\n"])
    wait_until(message: -> { "no stats line\nstderr:\n#{kino.stderr}" }) { kino.stderr.include?("main: stats ") }
    stops_gracefully(kino)
    said = Regexp.escape(said_by(pid: kino.pid))
    expect(kino.stderr.lines).to all(match(/\A#{said}(stats pid=|SIGHUP: reopened 0 log file|SIG(USR2|ALRM) ignored)/))
  end
end
