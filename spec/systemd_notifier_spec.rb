# frozen_string_literal: true

require "socket"
require "stringio"
require "kino/systemd_notifier"

# systemd's notify protocol, received where systemd would receive it: a
# unix datagram socket bound in the example's own directory (or in the
# abstract namespace), from Kino::SystemdNotifier itself and from a real
# `exe/kino`.
RSpec.describe Kino::SystemdNotifier do
  let(:log) { StringIO.new }

  # A bound datagram socket standing in for systemd's, closed after the
  # example; returns [socket, the NOTIFY_SOCKET value that names it].
  def notify_socket(abstract: false)
    name = abstract ? "@kino-spec-#{Process.pid}-#{rand(1 << 32)}" : signal_path("notify.sock")
    socket = Socket.new(:UNIX, :DGRAM)
    (@sockets ||= []) << socket
    socket.bind(described_class.socket_address(name))
    [socket, name]
  end

  # Datagrams as they arrive, up to and including the first that matches
  # +pattern+; fails the example if none does within +timeout+.
  def messages_until(socket, pattern, timeout: WaitHelper::BOOT_TIMEOUT)
    deadline = monotonic + timeout
    messages = []
    until messages.last&.match?(pattern)
      remaining = deadline - monotonic
      unless remaining.positive? && socket.wait_readable(remaining)
        raise WaitHelper::WaitTimeout, "no datagram matched #{pattern.inspect} within #{timeout}s; " \
                                       "received #{messages.inspect}"
      end
      message = socket.recv_nonblock(4096, exception: false)
      messages << message unless message == :wait_readable
    end
    messages
  end

  # What arrives within +seconds+.
  def messages_within(socket, seconds)
    deadline = monotonic + seconds
    messages = []
    while (remaining = deadline - monotonic).positive?
      next unless socket.wait_readable(remaining)

      message = socket.recv_nonblock(4096, exception: false)
      messages << message unless message == :wait_readable
    end
    messages
  end

  def notifier(env)
    described_class.new(env: env, log: log)
  end

  describe "with NOTIFY_SOCKET set" do
    it "sends READY=1 with MAINPID and a status to a socket named by its path" do
      socket, name = notify_socket
      expect(notifier("NOTIFY_SOCKET" => name).ready("serving")).to be(true)
      expect(messages_until(socket, /READY/)).to eq(["READY=1\nMAINPID=#{Process.pid}\nSTATUS=serving"])
    end

    it "reads a leading @ as Linux's abstract namespace" do
      socket, name = notify_socket(abstract: true)
      expect(described_class.socket_address(name)).to eq(Socket.sockaddr_un("\0#{name[1..]}"))
      notifier("NOTIFY_SOCKET" => name).stopping
      expect(messages_until(socket, /STOPPING/)).to eq(["STOPPING=1"])
    end

    it "pings WATCHDOG=1 every WATCHDOG_USEC/2 from a thread of its own, until stopped" do
      socket, name = notify_socket
      systemd = notifier("NOTIFY_SOCKET" => name, "WATCHDOG_USEC" => "200000")
      expect(systemd.watchdog_interval).to eq(0.1)
      started = monotonic
      threads = Thread.list.size
      systemd.start_watchdog
      expect(Thread.list.size).to eq(threads + 1)
      expect(messages_until(socket, /WATCHDOG/) + messages_until(socket, /WATCHDOG/)).to eq(["WATCHDOG=1"] * 2)
      expect(monotonic - started).to be >= 0.2

      systemd.stop
      expect(Thread.list.size).to eq(threads)
      messages_within(socket, 0.05) # one sent as #stop was called
      expect(messages_within(socket, 0.3)).to eq([])
      expect(log.string).to eq("")
    end

    it "pings only when WATCHDOG_PID, if set, is this process" do
      base = { "NOTIFY_SOCKET" => notify_socket.last, "WATCHDOG_USEC" => "200000" }
      expect(notifier(base.merge("WATCHDOG_PID" => Process.pid.to_s)).watchdog_interval).to eq(0.1)
      other = notifier(base.merge("WATCHDOG_PID" => (Process.pid + 1).to_s))
      expect(other.watchdog_interval).to be_nil
      threads = Thread.list.size
      other.start_watchdog
      expect(Thread.list.size).to eq(threads)
      %w[0 -5 soon].each do |usec|
        expect(notifier(base.merge("WATCHDOG_USEC" => usec)).watchdog_interval).to be_nil
      end
    end

    it "logs the first failed send, never raises, and sends on once it can" do
      path = signal_path("notify.sock") # nobody listens there yet
      systemd = notifier("NOTIFY_SOCKET" => path)
      expect(systemd.ready).to be(false)
      expect(systemd.stopping).to be(false)
      expect(log.string.lines.size).to eq(1)
      expect(log.string).to match(
        /\Akino: systemd notification failed \(Errno::E\w+: .+\); later failures are not logged\n\z/
      )

      socket, = notify_socket
      expect(systemd.stopping).to be(true)
      expect(messages_until(socket, /STOPPING/)).to eq(["STOPPING=1"])
    end

    it "never blocks on a socket whose queue is full" do
      socket, name = notify_socket
      systemd = notifier("NOTIFY_SOCKET" => name)
      started = monotonic
      results = Array.new(200) { systemd.ready }
      expect(monotonic - started).to be < 2
      expect(results.first).to be(true)
      expect(results).to include(false) # EAGAIN, as the receiver never reads
      expect(log.string).to eq("kino: systemd notification failed (Errno::EAGAIN: the socket's queue is full); " \
                               "later failures are not logged\n")
      expect(messages_until(socket, /READY/).size).to eq(1)
    end
  end

  describe "without NOTIFY_SOCKET" do
    it "does nothing and starts no thread, even with WATCHDOG_USEC set" do
      systemd = notifier("WATCHDOG_USEC" => "200000")
      threads = Thread.list.size
      expect(systemd.start_watchdog).to be(systemd)
      expect(Thread.list.size).to eq(threads)
      expect([systemd.enabled?, systemd.watchdog_interval]).to eq([false, nil])
      expect([systemd.ready, systemd.stopping]).to eq([false, false])
      systemd.stop
      expect(log.string).to eq("")
    end
  end

  describe "in exe/kino" do
    let(:port) { free_port }

    def spawn_notifying(mode, env)
      spawn_kino("-m", mode.to_s, "-w", "2", "-t", "1", "spec/fixtures/hello.ru",
                 port: port, env: env, wait: false)
    end

    def hello
      response = http_get("/", port: port)
      [response.code, response.body]
    end

    in_each_mode do |mode|
      it "sends READY=1 once it serves, WATCHDOG=1 while it runs and STOPPING=1 on TERM" do
        socket, name = notify_socket
        kino = spawn_notifying(mode, "NOTIFY_SOCKET" => name, "WATCHDOG_USEC" => "200000")
        ready = messages_until(socket, /\AREADY=1/).last
        expect(ready).to eq("READY=1\nMAINPID=#{kino.pid}\nSTATUS=Kino #{Kino::VERSION}: 2 workers x 1 threads " \
                            "(#{mode}), listening on tcp://127.0.0.1:#{port}")
        banner = kino.wait_for_stdout(/^\* systemd: READY=1 and STOPPING=1 to #{name}, WATCHDOG=1 every 0.1s$/)
        expect(banner).to include("* Listening on tcp://127.0.0.1:#{port}\n")
        expect(hello).to eq(["200", "Hello from Kino\n"])
        2.times { expect(messages_until(socket, /\A[A-Z]+=/, timeout: 2).last).to eq("WATCHDOG=1") }

        kino.signal("TERM")
        stopping = messages_until(socket, /\ASTOPPING=1/).last
        expect(stopping).to eq("STOPPING=1\nSTATUS=Gracefully stopping (SIGTERM)")
        expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
        expect(messages_within(socket, 0.3)).to all(eq("WATCHDOG=1"))
        expect(kino.stderr).not_to include("systemd")
      end

      it "sends to a socket in the abstract namespace" do
        socket, name = notify_socket(abstract: true)
        kino = spawn_notifying(mode, "NOTIFY_SOCKET" => name, "WATCHDOG_USEC" => nil)
        expect(messages_until(socket, /\AREADY=1/)).to match([a_string_starting_with("READY=1\nMAINPID=#{kino.pid}\n")])
        kino.wait_for_stdout(/^\* systemd: READY=1 and STOPPING=1 to #{name}, no watchdog$/)
        kino.signal("INT")
        expect(messages_until(socket, /\ASTOPPING=1/)).to eq(["STOPPING=1\nSTATUS=Gracefully stopping (SIGINT)"])
        expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
      end

      it "serves as before without NOTIFY_SOCKET, and says nothing of systemd" do
        kino = spawn_notifying(mode, "NOTIFY_SOCKET" => nil, "WATCHDOG_USEC" => "200000")
        kino.wait_for_banner
        expect(hello).to eq(["200", "Hello from Kino\n"])
        kino.signal("TERM")
        expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
        expect(kino.stdout).to include("- Goodbye!")
        expect(kino.stdout + kino.stderr).not_to include("systemd")
      end
    end
  end
end
