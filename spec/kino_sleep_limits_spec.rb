# frozen_string_literal: true

require "kino"

# Durations the OS clock cannot hold as given: Float::INFINITY, 1e300 and
# 10**30 seconds sleep (until interrupted) instead of overflowing the
# conversion to clock ticks, which is undefined behaviour and made the
# sleep return at once; NaN and negative durations are refused.
RSpec.describe "Kino.sleep limits" do
  def sleeper(seconds)
    Thread.new do
      Thread.current.report_on_exception = false
      Kino.sleep(seconds)
      :woke_up
    end
  end

  { "Float::INFINITY" => Float::INFINITY, "1e300" => 1e300, "10**30" => 10**30 }.each do |name, seconds|
    it "sleeps on for #{name} seconds until the thread is killed" do
      thread = sleeper(seconds)
      expect(thread.join(0.3)).to be_nil # still asleep
      expect(thread.status).to be_truthy
      started = monotonic
      thread.kill
      expect(thread.join(2)).to be(thread)
      expect(monotonic - started).to be < 1
    end
  end

  [-1, -1e-9, -Float::INFINITY, Float::NAN].each do |seconds|
    it "refuses #{seconds.inspect} with an ArgumentError" do
      expect { Kino.sleep(seconds) }.to raise_error(ArgumentError, /non-negative/)
    end
  end
end

# Kino::Server#shutdown(timeout) with a timeout that does not fit in
# milliseconds: an unbounded drain waits for the request in flight instead
# of overflowing into a deadline in the past and cutting it off.
RSpec.describe "Kino::Server#shutdown with an unbounded timeout" do
  it "waits for the request in flight for Float::INFINITY" do
    entered = Queue.new
    start_server(lint: false, threads: 1) do |_env|
      entered << true
      sleep 0.3
      [200, { "content-type" => "text/plain" }, ["finished"]]
    end
    socket = connect_with("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    wait_until(message: "the app never got the request") { !entered.empty? }
    stragglers = Thread.new { server.shutdown(Float::INFINITY) }
    response = read_response(socket)
    expect([response.status, response.body]).to eq([200, "finished"])
    expect(stragglers.value).to eq(0)
  end

  it "stops at once for NaN, cutting off what is in flight" do
    entered = Queue.new
    start_server(lint: false, threads: 1) do |_env|
      entered << true
      Kino.sleep(5)
      [200, { "content-type" => "text/plain" }, ["finished"]]
    end
    connect_with("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    wait_until(message: "the app never got the request") { !entered.empty? }
    started = monotonic
    expect(server.shutdown(Float::NAN)).to eq(1)
    expect(monotonic - started).to be < 2
  end
end
