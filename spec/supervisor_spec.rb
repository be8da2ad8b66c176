# frozen_string_literal: true

require "etc"
require "kino"

# More of them, shared with quarantine_spec.rb, in support/supervisor_apps.rb.
module SupervisorApps
  # An after_worker_boot hook that fails every boot. Its self is this
  # module, so it can be made shareable for :ractor mode.
  FAILING_BOOT = Ractor.make_shareable(-> { raise Exception, "boot failed on purpose" }) # rubocop:disable Lint/RaiseException

  module Hello
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["hello\n"]]
    end
  end

  # An app exception with its own initialize and message: nothing of it may
  # run on the supervisor's side (in :ractor mode the supervisor only gets
  # its class name, message and backtrace).
  class Fatal < Exception # rubocop:disable Lint/InheritException
    def initialize(parts)
      @parts = parts
      super()
    end

    def message
      @parts.join(", ")
    end
  end

  module RaisesFatal
    def self.call(env)
      raise Fatal, %w[disk full retry later] if env["PATH_INFO"] == "/fatal"

      [200, { "content-type" => "text/plain" }, ["alive\n"]]
    end
  end
end

RSpec.describe Kino::Supervisor do
  include_context "supervised workers"

  %i[threaded ractor].each do |mode|
    context "in :#{mode} mode" do
      describe "a worker that dies while requests are in flight" do
        it "answers its in-flight requests 500 at once, keeps serving, replaces it and calls on_worker_exit" do
          gate = signal_path("gate")
          start_server(SupervisorApps::Crashy, mode: mode, workers: 2, threads: 2, on_worker_exit: on_worker_exit)
          expect(server.mode).to eq(mode)
          begin
            held = Array.new(3) { request_in_background("/hold", gate) }
            wait_until(message: -> { "the held requests never all reached the app: #{server.stats}" }) do
              requests_in_app == 3
            end
            # One thread is free, in the worker that holds one request:
            # the crash lands there and takes that request down with it.
            expect(http_get("/crash").code).to eq("500")
            wait_until(message: "no held request was answered while the gate was closed") do
              held.any? { |t| !t.alive? }
            end
            cut, *survivors = held.partition { |t| !t.alive? }.flatten
            expect(cut.value).to eq(["500", "Internal Server Error\n"])
            expect(survivors.map(&:alive?)).to eq([true, true]) # still held: the other worker lives

            wait_until(message: -> { "no on_worker_exit call\n#{server_log}" }) { exits.size == 1 }
            index, error = exits.pop
            expect(index).to be_between(0, 1)
            expect(error).to be_an(Exception)
            expect([error.class, error.message]).to eq([Exception, "worker down on purpose"])

            log = wait_for_log(/restarting worker #{index}/)
            expect(log).to include("#{said_by}worker #{index} died: Exception: worker down on purpose\n",
                                   "#{said_by}answered 1 in-flight request(s) of worker #{index} with 500\n")
            wait_until(message: -> { "no replacement was started: #{server.stats}\n#{server_log}" }) do
              server.stats[:respawns] == 1
            end
            expect(http_get("/after").body).to eq("/after\n")
          ensure
            open_gate(gate)
          end
          expect(survivors.map { |t| t.join(SupervisorApps::HELD_TIMEOUT)&.value }).to eq([["200", "/hold\n"]] * 2)
        end

        it "has its replacement serve: four requests can be held at once again" do
          gate = signal_path("gate")
          start_server(SupervisorApps::Crashy, mode: mode, workers: 2, threads: 2, on_worker_exit: on_worker_exit)
          expect(http_get("/crash").code).to eq("500")
          wait_until(message: -> { "no replacement was started\n#{server_log}" }) { server.stats[:respawns] == 1 }
          begin
            held = Array.new(3) { request_in_background("/hold", gate) }
            # Three requests in the app at once need more than the two
            # threads of the surviving worker; a fourth is answered too.
            wait_until(message: -> { "only #{requests_in_app} of 3 requests reached the app" }) do
              requests_in_app == 3
            end
            expect(http_get("/fourth").body).to eq("/fourth\n")
          ensure
            open_gate(gate)
          end
          expect(held.map { |t| t.join(SupervisorApps::HELD_TIMEOUT)&.value }).to eq([["200", "/hold\n"]] * 3)
        end
      end

      describe "a worker that dies at boot" do
        it "is restarted after a back-off that doubles with each quick crash, and reported each time" do
          start_server(SupervisorApps::Hello, mode: mode, workers: 1, threads: 1,
                                              after_worker_boot: SupervisorApps::FAILING_BOOT,
                                              on_worker_exit: on_worker_exit)
          log = wait_for_log(/restarting worker 0 in 0\.20s/)
          restarts = log.scan(/^#{Regexp.escape(said_by)}restarting worker 0 in (\d\.\d\d)s$/)
          expect(restarts.flatten.first(3)).to eq(%w[0.05 0.10 0.20])
          expect(log).to include("#{said_by}worker 0 died: Exception: boot failed on purpose\n")
          calls = drain(exits)
          expect(calls.size).to be >= 3
          expect(calls.map { |index, error| [index, error.message] }.uniq).to eq([[0, "boot failed on purpose"]])
        end
      end

      describe "a clean stop" do
        it "calls on_worker_exit with no error for each worker" do
          start_server(SupervisorApps::Hello, mode: mode, workers: 2, threads: 1, on_worker_exit: on_worker_exit)
          expect(http_get("/").body).to eq("hello\n")
          expect(server.shutdown(5)).to eq(0)
          # Reported before shutdown returns: the supervisor waits for them.
          expect(drain(exits).sort_by(&:first)).to eq([[0, nil], [1, nil]])
        end
      end
    end
  end

  context "in :ractor mode, when a worker dies of an exception with its own initialize and message" do
    it "logs it, hands on_worker_exit a Kino::WorkerCrash naming it, and replaces the worker" do
      start_server(SupervisorApps::RaisesFatal, mode: :ractor, workers: 1, threads: 1, on_worker_exit: on_worker_exit)
      expect(http_get("/fatal").code).to eq("500")
      wait_until(message: -> { "no on_worker_exit call\n#{server_log}" }) { exits.size == 1 }
      index, error = exits.pop
      expect(index).to eq(0)
      expect(error).to be_a(Kino::WorkerCrash)
      expect([error.error_class, error.message])
        .to eq(["SupervisorApps::Fatal", "SupervisorApps::Fatal: disk, full, retry, later"])
      expect(error.backtrace.first).to include("supervisor_spec.rb")
      expect(server_log).to include("#{said_by}worker 0 died: SupervisorApps::Fatal: disk, full, retry, later\n")
      wait_until(message: -> { "no replacement\n#{server_log}" }) { server.stats[:respawns] == 1 }
      expect(http_get("/").body).to eq("alive\n")
      expect(server.shutdown(2)).to eq(0)
    end
  end

  # What :ractor mode leaves behind after a shutdown. (Until the native exit
  # board, a "waker" ractor interrupted the supervisor's Ractor.select and
  # could be left blocked; the name is still matched, to catch any.)
  context "in :ractor mode, after shutdown" do
    # Kino's ractors (workers and wakers) that have not terminated.
    def live_kino_ractors
      ObjectSpace.each_object(Ractor).count do |r|
        r.inspect.match?(/ kino-(worker-\d+|supervisor-waker) /) && !r.inspect.include?("terminated")
      end
    end

    # CPU seconds the named thread of this process has used (Linux: from
    # /proc, in clock ticks), or 0 when it is gone.
    def thread_cpu(name)
      thread = Thread.list.find { |t| t.name == name }
      return 0.0 unless thread

      fields = File.read("/proc/self/task/#{thread.native_thread_id}/stat").split(") ", 2).last.split
      (Integer(fields[11]) + Integer(fields[12])) / Float(Etc.sysconf(Etc::SC_CLK_TCK))
    rescue Errno::ENOENT
      0.0
    end

    it "leaves no ractor behind" do
      before = live_kino_ractors
      40.times do
        start_server(SupervisorApps::Hello, mode: :ractor, workers: 1, threads: 1)
        expect(server.shutdown(1)).to eq(0)
      end
      deadline = monotonic + 2
      sleep 0.05 until live_kino_ractors <= before || monotonic > deadline
      # A waker left blocked offering a wake-up nobody took would stay
      # alive (and keep the whole VM in multi-ractor mode); it used to
      # happen in about one shutdown in five.
      expect(live_kino_ractors - before).to eq(0)
    end

    it "does not spin the supervisor once shutdown has stopped waiting for a busy worker" do
      gate = signal_path("gate")
      start_server(SupervisorApps::Crashy, mode: :ractor, workers: 1, threads: 1)
      held = request_in_background("/hold", gate)
      wait_until(message: "the request never reached the app") { requests_in_app == 1 }
      # The worker stays at the gate: shutdown cuts the request off, waits
      # its 5 s for the worker, and returns with the worker still running.
      expect(server.shutdown(0.2)).to eq(1)
      expect { held.join(SupervisorApps::HELD_TIMEOUT).value }.to raise_error(EOFError)

      cpu = thread_cpu("kino-supervisor")
      sleep 1
      # A monitor looping instead of waiting burns a whole core (one did,
      # on a closed waker, until the busy worker ended); a waiting one,
      # next to nothing.
      expect(thread_cpu("kino-supervisor") - cpu).to be < 0.5
    ensure
      open_gate(gate) if gate
      Thread.list.find { |t| t.name == "kino-supervisor" }&.join(SupervisorApps::HELD_TIMEOUT)
    end
  end

  context "in :threaded mode, when a worker thread is killed" do
    it "treats the worker as dead and starts a replacement" do
      exits = Queue.new
      app = ->(_env) { [200, { "content-type" => "text/plain" }, ["ok\n"]] }
      start_server(app, mode: :threaded, workers: 1, threads: 2,
                        on_worker_exit: ->(index, error) { exits << [index, error&.message] })
      member = nil
      wait_until(message: "no worker thread") { member = Thread.list.find { |t| t.name == "kino-worker-slot-1" } }
      member.kill
      wait_until(message: "on_worker_exit never ran") { !exits.empty? }
      index, message = exits.pop
      expect(index).to eq(0)
      expect(message).to eq("a worker thread was killed")
      wait_until(message: "no replacement") { server.stats[:respawns] == 1 }
      expect(http_get("/").body).to eq("ok\n")
    end
  end
end
