# frozen_string_literal: true

module Bench
  # Where the machine's CPU went during a measured window: the server's
  # process tree, wrk, this script, and everything else ("other": builds,
  # other sessions, the hypervisor's steal time). A window with much "other"
  # was measured on a busy machine.
  class CpuWindow
    def initialize(server_pid)
      @server_pid = server_pid
    end

    def start
      @started = Bench.now
      @busy0 = ProcFs.machine_busy_ticks
      @tree0 = ProcFs.tree_ticks(@server_pid)
      times = Process.times
      @own0 = times.utime + times.stime
      @children0 = times.cutime + times.cstime
      self
    end

    # Call after wrk was reaped and before the server stops. Returns cores
    # used on average over the window: { server:, wrk:, other: }.
    def finish
      elapsed = Bench.now - @started
      busy = (ProcFs.machine_busy_ticks - @busy0) / ProcFs::HZ
      server = (ProcFs.tree_ticks(@server_pid) - @tree0) / ProcFs::HZ
      times = Process.times
      own = times.utime + times.stime - @own0
      wrk = times.cutime + times.cstime - @children0
      other = [busy - server - wrk - own, 0].max
      { server: server / elapsed, wrk: wrk / elapsed, other: other / elapsed }
    end
  end
end
