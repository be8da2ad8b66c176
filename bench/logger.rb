# frozen_string_literal: true

# One line logged per request: Kino::Logger against one ::Logger shared by
# every thread, on the same Kino server (:threaded, 2 workers x 3 threads),
# the same disk and the same load, the two endpoints alternating round by
# round (A B, B A, ...). Prints req/s per round, medians, their ratio, and
# how many lines each log holds against the requests wrk counted.
#
#   bundle exec ruby bench/logger.rb [--rounds 5] [--duration 8] [--yjit]
require "optparse"
require "tmpdir"
require "socket"
require "tempfile"
require "fileutils"
require_relative "lib/bench"

settings = { rounds: 5, duration: 8, connections: 64, wrk_threads: 2, yjit: false }
OptionParser.new do |o|
  o.on("--rounds N", Integer) { |v| settings[:rounds] = v }
  o.on("--duration SECONDS", Integer) { |v| settings[:duration] = v }
  o.on("--connections N", Integer) { |v| settings[:connections] = v }
  o.on("--yjit") { settings[:yjit] = true }
end.parse!

root = File.expand_path("..", __dir__)
dir = Dir.mktmpdir("kino-bench-logger")
port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
ruby = [RbConfig.ruby, *(settings[:yjit] ? ["--yjit"] : [])]
server = Process.spawn({ "KINO_BENCH_LOG_DIR" => dir }, *ruby, "exe/kino", "-m", "threaded", "-w", "2", "-t", "3",
                       "-b", "127.0.0.1", "-p", port.to_s, "bench/logging_app.ru",
                       chdir: root, out: File::NULL, err: File.join(dir, "server.err"), pgroup: true)
begin
  deadline = Bench.now + 30
  begin
    TCPSocket.new("127.0.0.1", port).close
  rescue SystemCallError
    raise "kino did not start: #{File.read(File.join(dir, 'server.err'))}" if Bench.now > deadline

    sleep 0.1
    retry
  end
  options = Struct.new(:wrk_threads, :connections).new(settings[:wrk_threads], settings[:connections])
  names = %w[kino shared]
  rps = names.to_h { |n| [n, []] }
  requests = names.to_h { |n| [n, 0] }
  settings[:rounds].times do |round|
    (round.even? ? names : names.reverse).each do |name|
      url = "http://127.0.0.1:#{port}/#{name}"
      output, = Bench::Wrk.run(Bench::Wrk.command(options, url, duration: settings[:duration], latency: false),
                               settings[:duration])
      result = Bench::Wrk.parse(output)
      raise "wrk errors on /#{name}:\n#{output}" if Bench::Wrk.errors?(result)

      rps[name] << result[:rps]
      requests[name] += result[:requests]
      puts format("round %d  /%-6s %10.0f req/s", round + 1, name, result[:rps])
    end
  end
  median = ->(list) { list.sort[list.size / 2] }
  Process.kill("TERM", -server)
  Process.wait(server)
  server = nil
  puts
  puts "yjit: #{settings[:yjit] ? 'on' : 'off'}; #{settings[:rounds]} rounds x #{settings[:duration]} s, " \
       "wrk -t#{settings[:wrk_threads]} -c#{settings[:connections]}"
  names.each do |name|
    lines = File.foreach(File.join(dir, "#{name}.log")).count { |l| l.include?("GET /#{name}") }
    puts format("/%-6s median %8.0f req/s   lines in its log: %d of %d requests", name, median.call(rps[name]),
                lines, requests[name])
  end
  puts format("Kino::Logger / shared ::Logger: %.2fx", median.call(rps["kino"]) / median.call(rps["shared"]))
ensure
  if server
    Process.kill("TERM", -server)
    Process.wait(server)
  end
  FileUtils.rm_rf(dir)
end
