# frozen_string_literal: true

require "kino"

# after_worker_boot through a real server, in both modes. Hooks are
# shareable (their self is this module) so :ractor workers can run them,
# and report through files, which a worker ractor and the spec share.
module WorkerBootApps
  # Answers with the name of the worker thread that served it; /hold
  # first waits at the X-Gate file.
  module Hello
    def self.call(env)
      HttpApps::Gate.wait(env["HTTP_X_GATE"]) if env["PATH_INFO"] == "/hold"
      [200, { "content-type" => "text/plain" }, ["hello from #{Thread.current.name}\n"]]
    end
  end

  RAISE_LINE = __LINE__ + 1
  FAILING_BOOT = Ractor.make_shareable(->(index) { raise ArgumentError, "boot of worker #{index} failed on purpose" })

  # A hook that writes "boot-<index>" into +dir+, as Puma's on_worker_boot
  # gets the index.
  # (A fresh local, assigned once: Ruby 4.0 refuses to share a lambda over
  # a variable that is assigned again.)
  def self.index_marker(dir)
    frozen_dir = dir.dup.freeze
    Ractor.make_shareable(->(index) { File.write(File.join(frozen_dir, "boot-#{index}"), "") })
  end

  # A hook written for no argument, as the earlier Kino called it.
  def self.plain_marker(dir)
    frozen_dir = dir.dup.freeze
    Ractor.make_shareable(-> { File.write(File.join(frozen_dir, "plain-#{Thread.current.name}"), "") })
  end
end

RSpec.describe "after_worker_boot" do
  in_each_mode do |mode|
    it "receives the worker's index" do
      dir = File.dirname(signal_path("boot"))
      start_server(WorkerBootApps::Hello, mode: mode, workers: 2, threads: 1, lint: false,
                                          after_worker_boot: WorkerBootApps.index_marker(dir))
      expect(server.mode).to eq(mode)
      %w[boot-0 boot-1].each do |name|
        wait_for_file(File.join(dir, name), message: -> { "#{name} missing\n#{server_log}" })
      end
      expect(Dir.children(dir).sort).to eq(%w[boot-0 boot-1])
      expect(server_log).to eq("")
    end

    it "still runs a hook that takes no argument" do
      dir = File.dirname(signal_path("boot"))
      start_server(WorkerBootApps::Hello, mode: mode, workers: 1, threads: 1, lint: false,
                                          after_worker_boot: WorkerBootApps.plain_marker(dir))
      wait_until(message: -> { "the hook never ran\n#{server_log}" }) { Dir.children(dir).size == 1 }
      expect(http_get("/").body).to eq("hello from kino-worker-slot-0\n")
      expect(server_log).to eq("")
    end

    it "logs a hook that raises with its backtrace, once per worker, and the workers serve anyway" do
      start_server(WorkerBootApps::Hello, mode: mode, workers: 2, threads: 1, lint: false,
                                          after_worker_boot: WorkerBootApps::FAILING_BOOT)
      wait_for_log(/worker 1 .*\n(    .*\n)*.*worker 0 |worker 0 .*\n(    .*\n)*.*worker 1 /)
      # Both workers serve: one holds a request while the other answers.
      gate = signal_path("gate")
      held = Thread.new { http_get("/hold", { "X-Gate" => gate }).body }
      wait_until(message: -> { "/hold never reached the app\n#{server_log}" }) { requests_in_app == 1 }
      other = http_get("/").body
      open_gate(gate)
      expect([held.value, other].sort).to eq(["hello from kino-worker-slot-0\n", "hello from kino-worker-slot-1\n"])
      # A respawn loop would have logged again by now (its first back-off
      # is 0.05 s).
      sleep 0.5
      log = server_log
      said = /^kino\[#{Process.pid}\] worker-(\d): /
      failures = log.scan(/#{said}after_worker_boot failed \(the worker serves anyway\): (.*)$/)
      expect(failures.sort).to eq([["0", "ArgumentError: boot of worker 0 failed on purpose"],
                                   ["1", "ArgumentError: boot of worker 1 failed on purpose"]])
      # The app's own frame, relative to the working directory.
      here = Regexp.escape(__FILE__.delete_prefix("#{Dir.pwd}/"))
      expect(log.scan(/^    #{here}:#{WorkerBootApps::RAISE_LINE}:/).size).to eq(2)
      expect(log).not_to match(/died|restarting/)
      expect(server.stats).to include(respawns: 0)
    end
  end
end
