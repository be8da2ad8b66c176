# frozen_string_literal: true

module Bench
  # What the harness reads from /proc: process trees and groups, memory and
  # CPU time of a process, and the machine's busy time.
  module ProcFs
    HZ = Etc.sysconf(Etc::SC_CLK_TCK).to_f

    def self.pids
      Dir.children("/proc").grep(/\A\d+\z/).map(&:to_i)
    end

    # The fields of /proc/PID/stat after the command name, which is in
    # parentheses and may hold spaces: [1] is the parent, [2] the process
    # group, [11] and [12] user and system time in ticks.
    def self.stat_fields(pid)
      stat = File.read("/proc/#{pid}/stat")
      stat[(stat.rindex(")") + 2)..].split
    end

    # root and every process below it.
    def self.tree(root)
      children = Hash.new { |h, k| h[k] = [] }
      pids.each do |pid|
        children[stat_fields(pid)[1].to_i] << pid
      rescue SystemCallError
        next
      end
      tree = [root]
      queue = [root]
      while (pid = queue.shift)
        children[pid].each do |child|
          tree << child
          queue << child
        end
      end
      tree
    end

    def self.group(pgid)
      pids.select do |pid|
        stat_fields(pid)[2].to_i == pgid
      rescue SystemCallError
        false
      end
    end

    # A "Key:   123 kB" line of /proc/PID/FILE (status, smaps_rollup), in
    # kB; 0 when the process is gone.
    def self.status_kb(pid, file, key)
      File.foreach("/proc/#{pid}/#{file}") do |line|
        return line.split[1].to_i if line.start_with?(key)
      end
      0
    rescue SystemCallError
      0
    end

    # User and system time of a process tree, in ticks.
    def self.tree_ticks(root)
      tree(root).sum do |pid|
        fields = stat_fields(pid)
        fields[11].to_i + fields[12].to_i
      rescue SystemCallError
        0
      end
    end

    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    def self.machine_busy_ticks
      fields = File.foreach("/proc/stat").first.split[1..8].map(&:to_i)
      fields.sum - fields[3] - fields[4]
    end
  end
end
