# frozen_string_literal: true

require "kino"
require "rbconfig"

module TwoServersApps
  module Hello
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["hello\n"]]
    end
  end
end

module TwoServers
  # Run by a child Ruby with the mode as its argument: starts two servers
  # side by side, gets one answer from each over a raw socket, shuts both
  # down and leaves. It says what happened on stdout as it goes.
  CHILD = <<~'RUBY'
    require "kino"
    require "socket"
    $stdout.sync = true
    Warning[:experimental] = false

    module App
      def self.call(_env)
        [200, { "content-type" => "text/plain" }, ["ok\n"]]
      end
    end

    mode = ARGV.fetch(0).to_sym
    servers = Array.new(2) do
      Kino::Server.new(App, log: $stderr, port: 0, bind: "127.0.0.1", mode: mode, workers: 1, threads: 1).start
    end
    servers.each do |server|
      socket = TCPSocket.new("127.0.0.1", server.port)
      socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      puts "answer #{socket.read.lines.first.chomp}"
      socket.close
    end
    servers.each do |server|
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      server.shutdown(1)
      puts format("shutdown %.2f", Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
    end
    puts "threads left: #{Thread.list.map(&:name).compact.inspect}"
  RUBY

  # Long enough for a slow machine to boot Ruby twice over; a process that
  # has not exited by then is not going to.
  EXIT_DEADLINE = 10
end

# Two servers in one process, as an embedder may run them (a public port
# and an admin port, say): both answer, each idle one shuts down well
# within its timeout, and the process exits afterwards. Each run is a
# child process, so a server that keeps its process from exiting fails the
# example instead of hanging the suite. Runs in :threaded and in :ractor
# mode.
RSpec.describe "Two servers in one process" do
  include ServerHelper

  # Runs TwoServers::CHILD; returns [exited?, status, output]. A child still
  # running at the deadline is killed.
  def run_child(mode)
    reader, writer = IO.pipe
    pid = Process.spawn(RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), "-e", TwoServers::CHILD,
                        mode.to_s, out: writer, err: writer, in: File::NULL, pgroup: true)
    writer.close
    output = Thread.new { reader.read }
    deadline = monotonic + TwoServers::EXIT_DEADLINE
    until (status = Process.waitpid2(pid, Process::WNOHANG)&.last) || monotonic > deadline
      sleep 0.05
    end
    unless status
      Process.kill(:KILL, -pid) # the whole group: a forked grandchild too
      Process.wait(pid)
    end
    # A process of the group still holding the pipe would keep the read
    # from ending: bounded, then the group goes.
    unless output.join(2)
      Process.kill(:KILL, -pid) rescue Errno::ESRCH # rubocop:disable Style/RescueModifier
      output.join(2)
    end
    [!status.nil?, status, output.alive? ? "(output never ended)" : output.value]
  ensure
    reader&.close
  end

  %i[threaded ractor].each do |mode|
    it "in :#{mode} mode, answers on both, shuts each down promptly, and lets the process exit" do
      exited, status, output = run_child(mode)
      shutdowns = output.scan(/^shutdown ([\d.]+)$/).flatten.map { |s| Float(s) }
      aggregate_failures "child output:\n#{output}" do
        expect(exited).to be(true), "the process had not exited #{TwoServers::EXIT_DEADLINE} s after it started " \
                                    "(killed)"
        expect(status&.success?).to be(true)
        expect(output.scan(/^answer (.*)$/).flatten).to eq(["HTTP/1.1 200 OK"] * 2)
        expect(shutdowns.size).to eq(2)
        # Nothing is in flight: an idle server takes none of its 1 s timeout.
        expect(shutdowns).to all(be < 0.5)
      end
    end
  end
end

# A second :ractor server cannot fork its shareability check (other ractors
# run), so it checks in place; that check must still prepare what
# preparation fixes (a config.ru lambda's Rack::Builder self) and, in :auto
# mode, still fall back to :threaded for an app it cannot share.
RSpec.describe "A second :ractor server's shareability check" do
  include ServerHelper

  def second_server(app, mode)
    server = Kino::Server.new(app, log: StringIO.new, port: 0, bind: "127.0.0.1", mode: mode, workers: 1, threads: 1)
    (@servers ||= []) << server
    server.start
  end

  before do
    start_server(TwoServersApps::Hello, mode: :ractor, workers: 1, threads: 1)
    expect(Ractor.count).to be > 1
  end

  it "serves a Rack::Builder-made lambda in :ractor mode" do
    app = Rack::Builder.new { run ->(_env) { [200, { "content-type" => "text/plain" }, ["built\n"]] } }.to_app
    second = second_server(app, :ractor)
    expect(second.stats[:mode]).to eq(:ractor)
    expect(http_get("/", port: second.port).body).to eq("built\n")
  end

  it "falls back to :threaded in :auto mode for an app that cannot be shared" do
    counts = Hash.new(0)
    app = lambda do |env|
      counts[env["PATH_INFO"]] += 1
      [200, { "content-type" => "text/plain" }, ["#{counts[env['PATH_INFO']]}\n"]]
    end
    second = second_server(app, :auto)
    expect(second.stats[:mode]).to eq(:threaded)
    expect(http_get("/", port: second.port).body).to eq("1\n")
    expect(http_get("/", port: second.port).body).to eq("2\n")
  end
end
