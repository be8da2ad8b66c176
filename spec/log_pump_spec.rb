# frozen_string_literal: true

require "kino"

module LogPumpApps
  # Its header value holds a CR, which the native writer drops and logs.
  module BadHeader
    def self.call(_env)
      [200, { "content-type" => "text/plain", "x-bad" => "a\rb" }, ["ok\n"]]
    end
  end
end

# A log whose writes fail for a while, as stderr does once its terminal
# has hung up, and then work again.
class FlakyLog
  def initialize(failures)
    @failures = failures
    @lines = []
    @lock = Mutex.new
  end

  def write(line)
    @lock.synchronize do
      if @failures.positive?
        @failures -= 1
        raise IOError, "closed stream"
      end
      @lines << line
    end
    line.bytesize
  end

  def lines
    @lock.synchronize { @lines.dup }
  end
end

RSpec.describe "The native log pump" do
  include ServerHelper

  it "outlives a log whose writes fail, and writes what comes after" do
    log = FlakyLog.new(1)
    server = Kino::Server.new(LogPumpApps::BadHeader,
                              log: log, port: 0, bind: "127.0.0.1", mode: :threaded, workers: 1, threads: 1).start
    port = server.port
    first = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/one"))
    expect(first.code).to eq("200")
    # The first dropped-header line met the failing write.
    wait_until(message: "the pump never tried the log") { log.instance_variable_get(:@failures).zero? }
    Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/two"))
    wait_until(message: -> { "the pump died: #{log.lines.inspect}" }) { log.lines.any? { |l| l.include?("x-bad") } }
  ensure
    server&.shutdown(1)
  end
end
