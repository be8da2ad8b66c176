# frozen_string_literal: true

require "socket"

module Kino
  # systemd's notify protocol (sd_notify(3)), spoken directly: each message
  # is one datagram of `KEY=value` lines to the unix socket NOTIFY_SOCKET
  # names, so Kino needs neither libsystemd nor a gem for it.
  #
  # - #ready: `READY=1` with `MAINPID`, once the server listens and its
  #   workers are started (with `Type=notify`, systemd holds back units
  #   ordered after this one until then);
  # - #stopping: `STOPPING=1` when the drain begins;
  # - a watchdog thread sends `WATCHDOG=1` every WATCHDOG_USEC/2 (systemd's
  #   advice) while WATCHDOG_USEC is set and WATCHDOG_PID, when set, is
  #   this process: a hung VM stops the pings and systemd restarts it.
  #
  # Without NOTIFY_SOCKET every method returns at once and no thread is
  # started. NOTIFY_SOCKET stays in the environment, as Puma leaves it: the
  # app may send its own STATUS lines, and with systemd's default
  # `NotifyAccess=main` what a child process sends is ignored anyway.
  #
  # A failed send (systemd gone, a full socket buffer) never raises into
  # the server and never blocks it (MSG_DONTWAIT); the first is logged.
  class SystemdNotifier
    attr_reader :watchdog_interval

    def initialize(env: ENV, log: $stderr, pid: Process.pid)
      @log = log
      @pid = pid
      @socket_name = env["NOTIFY_SOCKET"]
      @address = self.class.socket_address(@socket_name)
      @watchdog_interval = self.class.watchdog_interval(env, pid) if @address
      @lock = Mutex.new
      @failure_logged = false
      @wake = ConditionVariable.new
      @watchdog = nil
      @stopped = false
    end

    # The sockaddr for NOTIFY_SOCKET: a path, or "@name" for a name in
    # Linux's abstract namespace, where the "@" stands for a leading NUL.
    # nil when unset or empty.
    def self.socket_address(socket)
      return nil if socket.nil? || socket.empty?

      Socket.sockaddr_un(socket.start_with?("@") ? "\0#{socket[1..]}" : socket)
    end

    # Seconds between pings (half of WATCHDOG_USEC), or nil when systemd
    # expects none from this process.
    def self.watchdog_interval(env, pid)
      usec = Integer(env["WATCHDOG_USEC"] || "", exception: false)
      return nil unless usec&.positive?

      watchdog_pid = env["WATCHDOG_PID"]
      return nil if watchdog_pid && !watchdog_pid.empty? && Integer(watchdog_pid, exception: false) != pid

      usec / 2_000_000.0
    end

    def enabled?
      !@address.nil?
    end

    # For the banner: where the messages go, and how often the watchdog pings.
    def description
      watchdog = @watchdog_interval ? "WATCHDOG=1 every #{format('%g', @watchdog_interval)}s" : "no watchdog"
      "READY=1 and STOPPING=1 to #{@socket_name}, #{watchdog}"
    end

    def ready(status = nil)
      notify("READY=1", "MAINPID=#{@pid}", *status_line(status))
    end

    def stopping(status = nil)
      notify("STOPPING=1", *status_line(status))
    end

    # Starts the pings, if systemd asked for them; returns self.
    def start_watchdog
      return self unless @watchdog_interval

      @lock.synchronize do
        @watchdog ||= Thread.new do
          Thread.current.name = "kino-watchdog"
          ping_until_stopped
        end
      end
      self
    end

    # Ends the pings and waits for the thread.
    def stop
      thread = @lock.synchronize do
        @stopped = true
        @wake.signal
        @watchdog
      end
      thread&.join
    end

    private

    def status_line(status)
      status ? ["STATUS=#{status}"] : []
    end

    def ping_until_stopped
      notify("WATCHDOG=1") until wait_for_next_ping
    end

    # Waits one interval, or less if #stop wakes it; true once stopped.
    def wait_for_next_ping
      @lock.synchronize do
        @wake.wait(@lock, @watchdog_interval) unless @stopped
        @stopped
      end
    end

    # One datagram per message, on a socket of its own: nothing is held open
    # across a systemd restart (daemon-reexec binds the socket anew). The
    # send is nonblocking: BasicSocket#send would wait out a full queue
    # (EAGAIN) even with MSG_DONTWAIT.
    def notify(*lines)
      return false unless @address

      socket = Socket.new(:UNIX, :DGRAM)
      sent = socket.sendmsg_nonblock(lines.join("\n"), 0, @address, exception: false)
      return true unless sent == :wait_writable

      log_failure("Errno::EAGAIN: the socket's queue is full")
      false
    rescue SystemCallError, IOError => e
      log_failure("#{e.class}: #{e.message}")
      false
    ensure
      socket&.close
    end

    def log_failure(why)
      @lock.synchronize do
        return if @failure_logged

        @failure_logged = true
      end
      @log.write("kino: systemd notification failed (#{why}); " \
                 "later failures are not logged\n")
    rescue IOError, SystemCallError
      nil
    end
  end
end
