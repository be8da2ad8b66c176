# frozen_string_literal: true

module Bench
  # Peak memory of a process tree, sampled from /proc while load runs: RSS
  # summed over the tree (what `ps` would add up; counts pages a fork shares
  # with its parent once per process) and PSS summed (shared pages split
  # between the processes sharing them, so closer to what the tree costs).
  class MemorySampler
    INTERVAL = 0.25

    attr_reader :peak_rss_kb, :peak_pss_kb, :max_processes, :samples

    def initialize(root_pid)
      @root_pid = root_pid
      @peak_rss_kb = 0
      @peak_pss_kb = 0
      @max_processes = 0
      @samples = 0
      @stop = false
    end

    def start
      @thread = Thread.new do
        until @stop
          sample
          sleep INTERVAL
        end
      end
      self
    end

    def stop
      @stop = true
      @thread&.join
      sample
      self
    end

    private

    def sample
      pids = ProcFs.tree(@root_pid).select { |pid| File.exist?("/proc/#{pid}") }
      rss = pids.sum { |pid| ProcFs.status_kb(pid, "status", "VmRSS:") }
      pss = pids.sum { |pid| ProcFs.status_kb(pid, "smaps_rollup", "Pss:") }
      @peak_rss_kb = rss if rss > @peak_rss_kb
      @peak_pss_kb = pss if pss > @peak_pss_kb
      @max_processes = pids.size if pids.size > @max_processes
      @samples += 1
    end
  end
end
