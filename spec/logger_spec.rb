# frozen_string_literal: true

require "kino"
require "net/http"
require "open3"
require "rbconfig"

# Apps that log through a Kino::Logger the spec hands them: shareable, so
# they run in worker ractors too.
module LoggingApps
  # Logs `lines` lines (from the query string) and answers; with two
  # loggers, /free goes to the second.
  class Chatty
    def initialize(logger, free = nil)
      @logger = logger
      @free = free
    end

    def call(env)
      count = env["QUERY_STRING"][/lines=(\d+)/, 1].to_i
      logger = env["PATH_INFO"] == "/free" ? @free : @logger
      count.times { |i| logger.info("#{env['PATH_INFO']} #{i}") }
      [200, { "content-type" => "text/plain" }, ["ok\n"]]
    end
  end
end

RSpec.describe Kino::Logger do
  include ServerHelper
  include ClientHelper
  include KinoProcessHelper

  include_context "in a fresh directory"

  after do
    stop_servers
    stop_kino_processes
  end

  def log_lines(name)
    path = File.join(@dir, name)
    File.exist?(path) ? File.readlines(path) : []
  end

  def log_path(name = "app.log")
    File.join(@dir, name)
  end

  describe "as a ::Logger" do
    it "is one, with levels, progname, a formatter and <<" do
      logger = described_class.new(log_path, level: :info, progname: "shop")
      expect(logger).to be_a(Logger)
      logger.debug("hidden")
      logger.info("visible")
      logger.warn("order") { "ignored" }
      logger << "raw line\n"
      logger.formatter = proc { |severity, _time, progname, msg| "#{severity}|#{progname}|#{msg}\n" }
      logger.error("formatted")
      expect(logger.flush).to be(true)
      lines = log_lines("app.log")
      expect(lines[0]).to match(/\AI, \[\S+ #\d+\]  INFO -- shop: visible\n\z/)
      expect(lines[1]).to match(/WARN -- order: ignored\n\z/)
      expect(lines[2..]).to eq(["raw line\n", "ERROR|shop|formatted\n"])
      expect(logger.dropped).to eq(0)
    end

    it "appends to a file that is there" do
      File.write(log_path, "before\n")
      logger = described_class.new(log_path, formatter: proc { |_s, _t, _p, msg| "#{msg}\n" })
      logger.info("after")
      logger.flush
      expect(File.read(log_path)).to eq("before\nafter\n")
    end

    it "writes to an IO's file descriptor" do
      reader, writer = IO.pipe
      logger = described_class.new(writer, formatter: proc { |_s, _t, _p, msg| "#{msg}\n" })
      logger.info("through the pipe")
      logger.flush
      expect(reader.readpartial(100)).to eq("through the pipe\n")
      expect(logger.device.tty?).to be(false)
    ensure
      reader&.close
      writer&.close
    end

    it "writes to stdout by default, and what was logged is written when the process exits" do
      script = <<~'RUBY'
        require "kino"
        log = Kino::Logger.new(formatter: proc { |*, message| "#{message}\n" })
        3.times { |i| log.info("line #{i}") }
      RUBY
      out, err, status = Open3.capture3(RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), "-e", script)
      expect([status.success?, err]).to eq([true, ""])
      expect(out).to eq("line 0\nline 1\nline 2\n")
    end

    it "refuses an IO without a descriptor, and names a path it cannot open" do
      expect { described_class.new(StringIO.new) }.to raise_error(ArgumentError, /file descriptor, not StringIO/)
      expect do
        described_class.new(log_path("no/such/dir/app.log"))
      end.to raise_error(Kino::Error, %r{no/such/dir/app\.log})
    end

    it "is made shareable whole, and then still changes its level for a block" do
      logger = Ractor.make_shareable(described_class.new(log_path, level: :warn))
      expect(Ractor.shareable?(logger)).to be(true)
      expect(logger.device).to be_frozen
      logger.with_level(:debug) { logger.debug("inside") }
      logger.debug("outside")
      logger.flush
      expect(log_lines("app.log").map { |l| l[/-- : (.*)/, 1] }).to eq(["inside"])
      expect(logger.level).to eq(Logger::WARN)
    end

    it "is wrapped by ActiveSupport::TaggedLogging, as a Rails app's logger is" do
      require "active_support"
      require "active_support/tagged_logging"
      logger = ActiveSupport::TaggedLogging.new(described_class.new(log_path))
      logger.tagged("req-1", "shop") { logger.info("tagged") }
      logger.info("untagged")
      logger.flush
      expect(log_lines("app.log")).to eq(["[req-1] [shop] tagged\n", "untagged\n"])
    end

    it "logs from another ractor" do
      logger = Ractor.make_shareable(described_class.new(log_path, progname: "r"))
      ractor_value(Ractor.new(logger) { |l| 100.times { |i| l.info("from a ractor #{i}") } })
      logger.flush
      expect(log_lines("app.log").map { |l| l[/INFO -- r: (.*)/, 1] }).to eq(Array.new(100) { |i|
        "from a ractor #{i}"
      })
    end
  end

  in_each_mode do |mode|
    it "has all 10,000 lines from 4 workers in the file after a graceful stop" do
      logger = Ractor.make_shareable(described_class.new(log_path, capacity: 10_000))
      threads = mode == :ractor ? 1 : 2
      serve(LoggingApps::Chatty.new(logger), workers: 4, threads: threads, lint: false)
      clients = Array.new(4) do
        Thread.new do
          Net::HTTP.start("127.0.0.1", server.port) do |http|
            25.times { |i| expect(http.get("/c#{i}?lines=100").code).to eq("200") }
          end
        end
      end
      clients.each(&:join)
      server.shutdown
      lines = log_lines("app.log")
      expect(lines.size).to eq(10_000)
      messages = lines.map { |line| line[/INFO -- : (.*)/, 1] }
      expect(messages.tally.values.uniq).to eq([4]) # each client asked for the same 25 paths
      expect(messages.uniq.size).to eq(100 * 25)
      expect(logger.dropped).to eq(0)
    end

    it "drops and counts lines against a pipe nobody reads, and requests are not slowed" do
      reader, writer = IO.pipe
      blocked = Ractor.make_shareable(described_class.new(writer, capacity: 100))
      free = Ractor.make_shareable(described_class.new(File::NULL))
      serve(LoggingApps::Chatty.new(blocked, free), workers: 2, threads: 2, lint: false)
      timings = { blocked: [], free: [] }
      Net::HTTP.start("127.0.0.1", server.port) do |http|
        60.times do
          timings.each do |kind, list|
            started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
            expect(http.get("/#{kind}?lines=200").code).to eq("200")
            list << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
          end
        end
      end
      # 12,000 lines into a pipe that holds a few hundred: most are dropped
      # and counted, and a request that logs 200 of them takes about as
      # long as one that logs 200 to /dev/null (a write that waited for the
      # pipe would hold it until the end of the example).
      expect(blocked.dropped).to be > 10_000
      expect(free.dropped).to eq(0)
      # Stats count every logger's drops, this one's among them.
      expect(server.stats[:logger_dropped]).to be >= blocked.dropped
      median = ->(list) { list.sort[list.size / 2] }
      expect(median.call(timings[:blocked])).to be < median.call(timings[:free]) * 2
    ensure
      reader&.close # the writer thread's next write fails: what it holds is dropped
      writer&.close
    end
  end

  it "reopens its file on SIGHUP, after the file was renamed" do
    port = free_port
    kino = spawn_kino("-w", "1", "spec/fixtures/app_logger.ru", port: port, env: { "KINO_APP_LOG" => log_path })
    Net::HTTP.get(URI("http://127.0.0.1:#{port}/first"))
    wait_until(message: -> { "app.log: #{log_lines('app.log').inspect}" }) { log_lines("app.log").size == 1 }
    File.rename(log_path, log_path("app.log.1"))
    kino.signal("HUP")
    wait_until(message: -> { kino.stderr }) { kino.stderr.include?("reopened 1 log file") }
    Net::HTTP.get(URI("http://127.0.0.1:#{port}/second"))
    wait_until(message: -> { "app.log: #{log_lines('app.log').inspect}" }) { log_lines("app.log").size == 1 }
    expect(log_lines("app.log.1").join).to include("served /first")
    expect(log_lines("app.log").join).to include("served /second")
  end
end
