#!/usr/bin/env ruby
# frozen_string_literal: true

# CPU time per request by thread kind, from a system-wide `perf record`
# taken over one wrk run, and what each kind spent it on. perf's cpu-clock
# samples carry the time since the last one, so summing them per thread
# name gives CPU time; dividing by wrk's request count gives time per
# request. Threads are told apart by name: Kino's "kino-io-N" and Puma's
# "puma reactor" are the I/O threads, "kino-worker-*" and Puma's
# "puma srv tp NNN" the workers (on Ruby 4.0 a worker ractor's thread
# keeps Ruby's own name for it, "worker.rb:35"); wrk is wrk, "swapper"
# the idle loop, and everything else (the log pump, the kernel's workers,
# other programs) is "other".
#
#   perf record -e cpu-clock -F 999 -a -g -o /tmp/k.data -- \
#     wrk -t2 -c64 -d10s http://127.0.0.1:9393/cpu > /tmp/k.wrk
#   bundle exec ruby bench/perf_split.rb /tmp/k.data /tmp/k.wrk
#
# For each kind it also prints the share spent in the kernel, the top
# symbols by own time, and the top system calls (the innermost *sys_*
# frame of a kernel sample's stack; "(no syscall)" is interrupt and
# softirq work and switches with no system call on the stack).

require "optparse"

# perf_split.rb: one perf.data and the wrk output of the same window.
module BenchPerfSplit
  KINDS = %w[workers io wrk other idle].freeze

  Sample = Struct.new(:comm, :period, :frames)

  def self.kind(comm)
    case comm
    when /\Akino-io-/, "puma reactor" then "io"
    when /\Akino-worker/, /\Aworker\.rb:\d+\z/, /\Apuma srv tp \d/ then "workers"
    when "wrk" then "wrk"
    when "swapper" then "idle"
    else "other"
    end
  end

  # `perf script` prints a header line per sample ("comm tid period") and
  # then one "ip symbol (dso)" line per frame, innermost first.
  def self.samples(data)
    cmd = ["perf", "script", "-i", data, "-F", "comm,tid,period,ip,sym,dso"]
    IO.popen(cmd, err: File::NULL) do |io|
      current = nil
      io.each_line do |line|
        if line.start_with?("\t", " ") && current
          ip_sym, dso = line.strip.split(/ \((?=[^(]*\)\z)/, 2)
          current.frames << [ip_sym.split(" ", 2)[1] || "[unknown]", dso.to_s.chomp(")")]
        elsif (m = line.match(/\A(.+?)\s+\d+\s+(\d+)\s*\z/))
          yield current if current
          current = Sample.new(m[1].strip, Integer(m[2]), [])
        end
      end
      yield current if current
    end
  end

  def self.requests(wrk_output)
    text = File.read(wrk_output)
    count = text[/(\d+) requests in/, 1] or raise "no request count in #{wrk_output}"
    [Integer(count), Float(text[/requests in ([\d.]+)(m?s)/, 1]) * (Regexp.last_match(2) == "ms" ? 1e-3 : 1)]
  end

  # The innermost system call frame on a kernel stack: __x64_sys_futex,
  # or ____sys_sendmsg where the entry point itself was inlined. A thread
  # preempted on its way back to user space is not charged to the call it
  # is leaving.
  def self.syscall(names)
    return "(switched out on return to user space)" if names.include?("exit_to_user_mode_loop")

    call = names.find { |f| f.match?(SYSCALL) }
    call ? call.sub(SYSCALL, "") : "(no syscall)"
  end

  SYSCALL = /\A_+(x64_)?(do_)?sys_/

  def self.tally(data)
    by_kind = Hash.new { |h, k| h[k] = { ns: 0, kernel: 0, syms: Hash.new(0), calls: Hash.new(0) } }
    samples(data) do |s|
      t = by_kind[kind(s.comm)]
      t[:ns] += s.period
      top = s.frames.first || ["[unknown]", ""]
      t[:syms]["#{top[0]} (#{File.basename(top[1])})"] += s.period
      next unless top[1].include?("kernel")

      t[:kernel] += s.period
      t[:calls][syscall(s.frames.map(&:first))] += s.period
    end
    by_kind
  end

  def self.top(hash, total, count)
    hash.sort_by { |_, v| -v }.first(count).map { |k, v| format("%s %.0f%%", k, 100.0 * v / total) }.join("; ")
  end

  def self.run(argv)
    count = 8
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby bench/perf_split.rb [--top N] PERF_DATA WRK_OUTPUT"
      opts.on("--top N", Integer, "Symbols and system calls listed per kind (default #{count})") { |v| count = v }
    end.parse!(argv)
    data, wrk = argv
    abort "need a perf.data and wrk's output" unless data && wrk
    reqs, secs = requests(wrk)
    by_kind = tally(data)
    puts format("%d requests in %.2f s: %.0f req/s", reqs, secs, reqs / secs)
    puts
    puts "| kind | CPU µs/request | cores | in the kernel |"
    puts "| --- | ---: | ---: | ---: |"
    KINDS.each do |k|
      t = by_kind[k]
      kernel = t[:ns].positive? ? 100.0 * t[:kernel] / t[:ns] : 0
      puts format("| %s | %.0f | %.2f | %.0f%% |", k, t[:ns] / 1e3 / reqs, t[:ns] / 1e9 / secs, kernel)
    end
    (KINDS - %w[idle]).each do |k|
      t = by_kind[k]
      next if t[:ns].zero?

      puts
      puts "#{k}, own time: #{top(t[:syms], t[:ns], count)}"
      puts "#{k}, kernel time by system call: #{top(t[:calls], t[:kernel], count)}" if t[:kernel].positive?
    end
  end
end

BenchPerfSplit.run(ARGV) if $PROGRAM_NAME == __FILE__
