# frozen_string_literal: true

module Bench
  # Every process group the harness starts, so that an exception or Ctrl-C
  # still ends them all (and nothing outlives the harness).
  module Processes
    @groups = {}
    @lock = Mutex.new

    class << self
      def spawn(*cmd, **opts)
        pid = Process.spawn(*cmd, pgroup: true, **opts)
        @lock.synchronize { @groups[pid] = cmd.first }
        pid
      end

      def forget(pid)
        @lock.synchronize { @groups.delete(pid) }
      end

      # True while any process of the group (leader or not) is alive.
      def group_alive?(pgid)
        Process.kill(0, -pgid)
        true
      rescue Errno::ESRCH
        false
      rescue Errno::EPERM
        true
      end

      def kill_group(pgid, signal)
        Process.kill(signal, -pgid)
      rescue Errno::ESRCH, Errno::EPERM
        nil
      end

      def reap(pid)
        Process.waitpid(pid, Process::WNOHANG)
      rescue Errno::ECHILD
        nil
      end

      # TERM, then KILL, every group still registered.
      def cleanup!
        pids = @lock.synchronize { @groups.keys }
        return if pids.empty?

        pids.each { |pid| kill_group(pid, "TERM") }
        deadline = Bench.now + 5
        pids.each do |pid|
          sleep 0.05 while Bench.now < deadline && reap(pid).nil? && group_alive?(pid)
          if group_alive?(pid)
            kill_group(pid, "KILL")
            begin
              Process.waitpid(pid)
            rescue Errno::ECHILD
              nil
            end
          end
          forget(pid)
        end
      end
    end
  end
end
