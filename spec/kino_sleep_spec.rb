# frozen_string_literal: true

require "kino"

# Apps that sleep in a request. Long's /long sleeps ten times the shutdown
# timeout its example uses, so a shutdown that waited for the sleep would
# show.
module KinoSleepApps
  LONG = 4.8

  # Answers with how long a Kino.sleep(0.2) took.
  module Timed
    def self.call(_env)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Kino.sleep(0.2)
      [200, HttpApps.text, [(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to_s]]
    end
  end

  module Long
    def self.call(env)
      Kino.sleep(LONG) if env["PATH_INFO"] == "/long"
      [200, { "content-type" => "text/plain" }, ["woke\n"]]
    end
  end
end

RSpec.describe "Kino.sleep" do
  # Starts a thread that runs Kino.sleep(+seconds+) and returns it once the
  # thread is inside the native sleep (its backtrace says so), so that what
  # the example does next happens to a sleeping thread.
  def sleeping_thread(seconds)
    thread = Thread.new do
      Thread.current.report_on_exception = false
      Kino.sleep(seconds)
      :woke_up
    end
    wait_until(message: -> { "the thread never got into Kino.sleep: #{thread.backtrace.inspect}" }) do
      in_native_sleep?(thread)
    end
    thread
  end

  # Native.sleep on top of Kino.sleep, both in native.rb (a C method's frame
  # takes its caller's file). The method's name is read as base_label: the
  # printed label differs by Ruby ("sleep", "'Kino::Native.sleep'" on 3.4+).
  def in_native_sleep?(thread)
    frames = thread.backtrace_locations(0, 2) || []
    frames.size == 2 && frames.all? { |f| f.path.end_with?("lib/kino/native.rb") && f.base_label == "sleep" }
  end

  it "sleeps at least the time asked and returns it" do
    started = monotonic
    expect(Kino.sleep(0.1)).to eq(0.1)
    expect(monotonic - started).to be >= 0.1
  end

  it "refuses a negative or NaN duration" do
    expect { Kino.sleep(-1) }.to raise_error(ArgumentError, /non-negative/)
    expect { Kino.sleep(Float::NAN) }.to raise_error(ArgumentError, /non-negative/)
  end

  it "lets other Ruby threads run meanwhile (the GVL is released)" do
    ticks = 0
    stop = false
    ticker = Thread.new do
      until stop
        ticks += 1
        Thread.pass
      end
    end
    before = ticks
    Kino.sleep(0.2)
    expect(ticks - before).to be > 0
  ensure
    stop = true
    ticker&.join(1)
  end

  it "ends at once when its thread is killed" do
    thread = sleeping_thread(10)
    killed = monotonic
    thread.kill
    expect(thread.join(5)).to eq(thread)
    expect(monotonic - killed).to be < 2.0 # not the 10 s asked
    expect(thread.status).to be(false)
  end

  it "ends at once with an exception raised into its thread" do
    thread = sleeping_thread(10)
    raised = monotonic
    thread.raise(Interrupt, "wake up")
    expect { thread.join(5) }.to raise_error(Interrupt, "wake up")
    expect(monotonic - raised).to be < 2.0 # not the 10 s asked
  end

  it "wakes on time inside a non-main ractor" do
    Warning[:experimental] = false
    ractor = Ractor.new do
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Kino.sleep(0.05)
      [Ractor.current == Ractor.main, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started]
    end
    main, elapsed = ractor_value(ractor)
    expect(main).to be(false)
    expect(elapsed).to be >= 0.05
    expect(elapsed).to be < 2.0
  end

  describe "in a request" do
    in_each_mode do
      it "sleeps for the time asked inside an app" do
        serve(KinoSleepApps::Timed)
        elapsed = Float(http_get("/").body)
        expect(elapsed).to be >= 0.19
        expect(elapsed).to be < 2.0
      end

      it "is cut off by shutdown(timeout): the client is disconnected and the request counted as cut off" do
        exits = Queue.new
        start_server(KinoSleepApps::Long, mode: mode, workers: 1, threads: 1,
                                          on_worker_exit: ->(index, error) { exits << [index, error] })
        socket = connect_with("GET /long HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(message: "the request never reached the app") { requests_in_app == 1 }

        started = monotonic
        stopping = Thread.new { [server.shutdown(0.5), monotonic - started] }
        expect(closed_by_peer?(socket)).to be(true) # no response: the connection was closed
        disconnected_after = monotonic - started
        stragglers, shutdown_took = stopping.value
        expect(disconnected_after).to be < 3.0 # at the timeout, not when the sleep would end
        expect(stragglers).to eq(1)
        expect(server_log).to include("#{said_by}shutdown timeout reached; 1 request(s) cut off\n")
        expect(exits.size).to eq(1) # the worker has ended by the time shutdown returns

        # Shutdown interrupts the Kino.sleep of the request it cut off, so
        # it returns soon after its timeout.
        expect(shutdown_took).to be < 3.0
      end
    end
  end
end
