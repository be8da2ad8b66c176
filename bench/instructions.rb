#!/usr/bin/env ruby
# frozen_string_literal: true

# CPU instructions per request, counted by valgrind's callgrind: unlike
# req/s, the count does not change with what else the machine runs, so two
# builds compare on a busy machine. For each round, mode and Kino checkout
# (interleaved: A, B, A, B), `exe/kino -w 1 bench/bench_app.ru` runs under
# callgrind; after a warm-up the counters are zeroed (callgrind_control -z),
# a client in this process sends --requests keep-alive GETs over
# --connections connections, the counters are dumped (-d), and the total
# (every thread of the server: I/O threads, workers, the log pump) is
# divided by the requests. The dump is written per thread
# (--separate-threads=yes), so a second table splits the same count by
# thread kind: the I/O threads (kino-io-*, the ones running asio's
# reactor), the workers (the threads that build a request's env: worker
# ractors in :ractor, worker threads in :threaded) and the rest (the main
# thread, Ruby's timer thread, the log pump, the control listener).
#
#   bundle exec ruby bench/instructions.rb --kino-root /tmp/kino-old --kino-root .
#   bundle exec ruby bench/instructions.rb --modes ractor --rounds 3 --requests 4000
#
# What the window also holds: the server's background work for as long as
# it lasts (the log pump's tick, the workers' 50 ms wait ticks), which
# under valgrind's slowdown is a few percent of the total, and the
# request queue's spin before a worker parks (see `spinning`), which the
# second column leaves out.
#
# Needs valgrind (Debian: valgrind). YJIT stays off: callgrind counts the
# interpreter.

require "optparse"
require "socket"
require "tmpdir"
require "fileutils"
require "etc"

# instructions.rb: one callgrind run per (round, mode, checkout).
module BenchInstructions
  ROOT = File.expand_path("..", __dir__)

  Options = Struct.new(:roots, :modes, :rounds, :requests, :connections, :warmup, :path, :keep, keyword_init: true)

  def self.parse(argv)
    o = Options.new(roots: [], modes: %w[ractor threaded], rounds: 2, requests: 2000, connections: 4, warmup: 300,
                    path: "/plaintext")
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby bench/instructions.rb [options]"
      opts.on("--kino-root DIR", "A Kino checkout, compiled (repeat to compare; default: this one)") do |v|
        o.roots << File.expand_path(v)
      end
      opts.on("--modes LIST", Array, "Kino modes (default #{o.modes.join(',')})") { |v| o.modes = v }
      opts.on("--rounds N", Integer, "Rounds (default #{o.rounds})") { |v| o.rounds = v }
      opts.on("-n", "--requests N", Integer, "Measured requests per run (default #{o.requests})") { |v| o.requests = v }
      opts.on("-c", "--connections N", Integer, "Client connections (default #{o.connections})") do |v|
        o.connections = v
      end
      opts.on("--warmup N", Integer, "Requests before the counters are zeroed (default #{o.warmup})") do |v|
        o.warmup = v
      end
      opts.on("--path PATH", "Endpoint of bench/bench_app.ru (default #{o.path})") { |v| o.path = v }
      opts.on("--keep DIR", "Keep each run's callgrind dump there, for callgrind_annotate --inclusive=yes") do |v|
        o.keep = File.expand_path(v)
      end
    end.parse!(argv)
    o.roots << ROOT if o.roots.empty?
    o
  end

  def self.free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  # Sends +count+ GETs over +connections+ keep-alive connections, each
  # response read whole (bench_app.ru always sends a content-length).
  def self.load(port, path, count, connections)
    per = count / connections
    Array.new(connections) do
      Thread.new do
        socket = TCPSocket.new("127.0.0.1", port)
        per.times do
          socket.write("GET #{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
          head = socket.gets("\r\n\r\n") or raise "connection closed"
          raise "unexpected answer: #{head.lines.first}" unless head.start_with?("HTTP/1.1 200")

          socket.read(Integer(head[/^content-length: *(\d+)/i, 1]))
        end
        socket.close
      end
    end.each(&:join)
    per * connections
  end

  def self.wait_for(port, pid, timeout)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      raise "server exited before it listened" if Process.waitpid(pid, Process::WNOHANG)

      begin
        TCPSocket.new("127.0.0.1", port).close
        return
      rescue SystemCallError
        raise "server did not listen within #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.5
      end
    end
  end

  # One file per thread: the thread's number (callgrind's, in creation
  # order) stays in the name, so callgrind_annotate can read them one by one.
  def self.keep(dump, root, mode, dir, stamp)
    FileUtils.mkdir_p(dir)
    thread = File.basename(dump)[/-\d+\z/]
    FileUtils.cp(dump, File.join(dir, "callgrind.#{File.basename(root)}.#{mode}.#{stamp}#{thread}"))
  end

  # What the request queue's semaphore spent spinning before it parked a
  # worker (moodycamel's waitWithPartialSpinning, inclusive): it depends on
  # how the threads were scheduled, not on the code a request runs, and
  # is a fifth of the total or more, so the second figure leaves it out.
  def self.spinning(dump)
    out = IO.popen(["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump], err: File::NULL, &:read)
    # The function's own summary row, not a line of annotated source.
    line = out.lines.find { |l| l.match?(/\A\s*[\d,]+ /) && l.include?("waitWithPartialSpinning") && !l.include?("=>") }
    line ? Integer(line[/\A\s*([\d,]+)/, 1].delete(",")) : 0
  end

  # callgrind does not record thread names, so a thread's kind is told by
  # what it ran: only an I/O thread runs asio's reactor loop and only a
  # worker builds a request's env. Checked on the workers first, since a
  # worker never runs the reactor but could, in principle, call into asio.
  KINDS = { "workers" => /\bbuild_env\(/, "io" => /epoll_reactor::run\(|scheduler::do_run_one\(/ }.freeze

  def self.kind(dump)
    names = File.foreach(dump).grep(/\A(c?fn)=/).join
    KINDS.each { |name, pattern| return name if names.match?(pattern) }
    "other"
  end

  def self.total(dump)
    File.foreach(dump).grep(/\A(summary|totals):/).first[/\d+/].to_i
  end

  # Per thread kind: [instructions, of them the queue's spinning].
  def self.split(dumps)
    dumps.each_with_object(Hash.new { |h, k| h[k] = [0, 0] }) do |dump, by_kind|
      costs = by_kind[kind(dump)]
      costs[0] += total(dump)
      costs[1] += spinning(dump)
    end
  end

  def self.callgrind_control(flag, pid)
    system("callgrind_control", flag, pid.to_s, out: File::NULL, err: File::NULL) or
      raise "callgrind_control #{flag} failed"
  end

  def self.measure(root, mode, options)
    Dir.mktmpdir("kino-callgrind") do |dir|
      port = free_port
      out = File.join(dir, "callgrind.out")
      env = { "BUNDLE_GEMFILE" => File.join(root, "Gemfile"), "RUBYOPT" => "-rbundler/setup" }
      pid = Process.spawn(env, "valgrind", "--tool=callgrind", "--separate-threads=yes", "--callgrind-out-file=#{out}",
                          RbConfig.ruby, File.join(root, "exe", "kino"), "-m", mode, "-w", "1", "-p", port.to_s,
                          File.join(root, "bench", "bench_app.ru"), chdir: root, out: File::NULL, err: File::NULL)
      begin
        wait_for(port, pid, 600)
        load(port, options.path, options.warmup, options.connections)
        callgrind_control("-z", pid)
        served = load(port, options.path, options.requests, options.connections)
        callgrind_control("-d", pid)
        dumps = Dir[File.join(dir, "callgrind.out.1-*")]
        raise "no callgrind dump" if dumps.empty?

        stamp = Process.clock_gettime(Process::CLOCK_REALTIME).to_i
        dumps.each { |dump| keep(dump, root, mode, options.keep, stamp) } if options.keep
        by_kind = split(dumps)
        total, spin = by_kind.values.transpose.map(&:sum)
        [total.fdiv(served), (total - spin).fdiv(served), by_kind.transform_values { |v| v.map { |x| x.fdiv(served) } }]
      ensure
        Process.kill("TERM", pid)
        Process.wait(pid)
      end
    end
  end

  def self.run(argv)
    o = parse(argv)
    results = Hash.new { |h, k| h[k] = [] }
    puts "callgrind instructions per #{o.path} request; #{Etc.nprocessors} cores, #{RUBY_DESCRIPTION}, YJIT off"
    puts "#{o.requests} requests over #{o.connections} connections after #{o.warmup} warm-up; -w 1; " \
         "#{o.rounds} rounds, checkouts interleaved"
    o.rounds.times do |round|
      o.modes.each do |mode|
        o.roots.each do |root|
          per = measure(root, mode, o)
          results[[mode, root]] << per
          puts format("round %d  %-8s  %-40s  %10.0f  %10.0f", round + 1, mode, root, *per.first(2))
        end
      end
    end
    puts
    puts "| mode | checkout | instructions/request (median) | without the queue's spinning (median) | per round |"
    puts "| --- | --- | ---: | ---: | --- |"
    results.each do |(mode, root), values|
      all, net = values.map { |v| v.first(2) }.transpose.map { |v| median(v) }
      rounds = values.map { |a, n| format("%.0f (%.0f)", a, n) }.join(" / ")
      puts format("| %s | `%s` | %.0f | %.0f | %s |", mode, root, all, net, rounds)
    end
    print_split(results)
  end

  def self.median(values)
    values.sort[values.size / 2]
  end

  # The same medians by thread kind; a kind's spinning is in brackets.
  def self.print_split(results)
    puts
    puts "| mode | checkout | I/O threads | workers | other | total |"
    puts "| --- | --- | ---: | ---: | ---: | ---: |"
    results.each do |(mode, root), values|
      cells = %w[io workers other].map do |kind|
        all, spin = values.map { |v| v[2].fetch(kind, [0, 0]) }.transpose.map { |v| median(v) }
        spin.positive? ? format("%.0f (%.0f)", all, spin) : format("%.0f", all)
      end
      puts format("| %s | `%s` | %s | %s | %s | %.0f |", mode, root, *cells, median(values.map(&:first)))
    end
  end
end

BenchInstructions.run(ARGV) if $PROGRAM_NAME == __FILE__
