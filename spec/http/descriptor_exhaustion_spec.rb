# frozen_string_literal: true

require "net/http"
require "socket"
require "tmpdir"

# The child's descriptor limit, and clients enough to run past it.
module DescriptorExhaustion
  FD_LIMIT = 64
  CLIENTS = 150
end

# A server out of file descriptors (EMFILE) pauses accepting instead of
# retrying at once: retrying spun an I/O thread at 100% and wrote a log
# line per try. `exe/kino` runs as a child with a low RLIMIT_NOFILE and
# max_connections set above it (the default, 90% of the limit, would pause
# accepting before the descriptors run out).
RSpec.describe "Running out of file descriptors" do
  include ServerHelper

  # CPU seconds (user + system) the process has used so far.
  def cpu_seconds(pid)
    fields = File.read("/proc/#{pid}/stat").split(") ", 2).last.split
    (Integer(fields[11]) + Integer(fields[12])) / 100.0 # utime, stime in USER_HZ ticks
  end

  %w[threaded ractor].each do |mode|
    it "backs off, logs once, and serves again once connections close (:#{mode} mode)" do
      skip "needs /proc" unless File.exist?("/proc/self/stat")
      config = File.join(Dir.mktmpdir("kino-fds"), "kino.rb")
      File.write(config, "max_connections 100_000\n")
      port = free_port
      limit = DescriptorExhaustion::FD_LIMIT
      kino = spawn_kino("-C", config, "-m", mode, "-w", "1", "-t", "2", "spec/fixtures/hello.ru",
                        port: port, spawn_options: { rlimit_nofile: [limit, limit] })
      expect(http_get("/", port: port).code).to eq("200")

      clients = Array.new(DescriptorExhaustion::CLIENTS) { connect(port) } # beyond the limit, they wait in the backlog
      wait_until(message: "the server never ran out of descriptors:\n#{kino.stderr}") do
        kino.stderr.include?("Too many open files")
      end
      before = cpu_seconds(kino.pid)
      sleep 1.5
      used = cpu_seconds(kino.pid) - before
      expect(used).to be < 0.5, "the server used #{used}s of CPU in 1.5 s while out of descriptors"
      expect(kino.stderr.scan("Too many open files").size).to be <= 2

      clients.each(&:close)
      response = wait_until(timeout: 10, message: "the server never served again:\n#{kino.stderr}") do
        http_get("/", port: port)
      rescue Errno::ECONNRESET, EOFError, Net::ReadTimeout
        nil
      end
      expect(response.code).to eq("200")
      expect(kino.stderr.scan("Too many open files").size).to be <= 2
    end
  end
end
