# frozen_string_literal: true

require "kino"

# A worker thread answers a request whose body is a plain Array and takes
# the next one in one native call (Kino::Native::Taker#respond_and_take);
# every other answer goes the way it always did. These examples mix both
# on one connection, and stop a server while a worker is inside the call.
module RespondAndTakeApps
  # An each body: streamed, chunked.
  module Streamed
    def self.each
      yield "stre"
      yield "amed"
    end
  end

  # Answers by path: /array (a plain Array), /stream, /error (the app
  # raises), /bad (an Array with a Symbol in it: the answer itself fails),
  # /slow (an Array, after 0.3 s).
  module Mixed
    def self.call(env)
      case env["PATH_INFO"]
      when "/array" then [200, { "content-type" => "text/plain" }, ["array ", env["QUERY_STRING"]]]
      when "/stream" then [200, { "content-type" => "text/plain" }, Streamed]
      when "/error" then raise "boom"
      when "/bad" then [200, { "content-type" => "text/plain" }, ["half", :symbol]]
      when "/slow"
        sleep 0.3
        [200, { "content-type" => "text/plain" }, ["slow"]]
      else [404, { "content-type" => "text/plain" }, ["no\n"]]
      end
    end
  end
end

RSpec.describe "Kino::Native::Taker#respond_and_take" do
  def request(path)
    "GET #{path} HTTP/1.1\r\nHost: x\r\n\r\n"
  end

  in_each_mode do
    it "answers Array, streamed and failing answers in order on one pipelined connection" do
      serve(RespondAndTakeApps::Mixed, lint: false, workers: 1, threads: 1)
      paths = %w[/array?1 /stream /error /array?2 /bad /array?3 /stream /array?4]
      socket = connect_with(paths.map { |p| request(p) }.join)
      responses = paths.map { read_response(socket) }
      expect(responses.map { |r| [r.status, r.body] }).to eq(
        [[200, "array 1"], [200, "streamed"], [500, "Internal Server Error\n"], [200, "array 2"],
         [500, "Internal Server Error\n"], [200, "array 3"], [200, "streamed"], [200, "array 4"]]
      )
      expect(responses[1]).to be_chunked
      wait_for_log(%r{500 GET /error · RuntimeError: boom})
      wait_for_log(%r{500 GET /bad · TypeError: response body must yield Strings, got Symbol})
    end

    it "answers many pipelined requests in order" do
      serve(RespondAndTakeApps::Mixed, lint: false, workers: 1, threads: 1)
      socket = connect_with((1..50).map { |i| request("/array?#{i}") }.join)
      bodies = Array.new(50) { read_response(socket).body }
      expect(bodies).to eq((1..50).map { |i| "array #{i}" })
      # Counted once the I/O thread has written the answer, which the
      # client may read first.
      wait_until(message: -> { "served #{server.stats[:served]}, not 50" }) { server.stats[:served] == 50 }
    end

    it "drains what is queued when the server stops while a worker is inside it" do
      serve(RespondAndTakeApps::Mixed, lint: false, workers: 1, threads: 1)
      expect(http_get("/array?warm").body).to eq("array warm") # the worker now waits inside the call
      socket = connect_with(request("/slow"))
      wait_until(message: "the slow request never reached the app") { requests_in_app == 1 }
      queued = connect_with(request("/array?after"))
      wait_until(message: "the second request was never queued") { server.stats[:queued] == 1 }
      started = monotonic
      stragglers = server.shutdown(5)
      expect(stragglers).to eq(0)
      expect(monotonic - started).to be < 3
      expect([read_response(socket).body, read_response(queued).body]).to eq(["slow", "array after"])
      expect(server_log).not_to match(/crash|died|failed/)
    end
  end

  context "called directly" do
    let(:server_id) { Kino::Native.server_create(NativeOptions.with(worker_slots: 1)) }
    let(:port) { Integer(Kino::Native.server_addresses(server_id).first[/:(\d+)\z/, 1]) }

    before { Kino::Native.server_start(server_id) }

    after { Kino::Native.server_release(server_id) }

    it "raises a failed answer before anything is taken" do
      taker = Kino::Native.taker(server_id, 0)
      socket = connect_with(request("/one"), port)
      first = taker.take
      other = connect_with(request("/two"), port)
      wait_until(message: "the second request was never queued") { Kino::Native.server_stats(server_id)[:queued] == 1 }
      expect do
        taker.respond_and_take(first["kino.request"], 200, {}, ["ok", 1])
      end.to raise_error(TypeError, /must yield Strings/)
      expect(Kino::Native.server_stats(server_id)[:queued]).to eq(1) # still there
      Kino::Native.respond_error(first["kino.request"], 500, "failed\n")
      expect(read_response(socket).status).to eq(500)
      second = taker.take
      expect(second["PATH_INFO"]).to eq("/two")
      Kino::Native.respond(second["kino.request"], 200, {}, ["two"])
      expect(read_response(other).body).to eq("two")
    ensure
      [socket, other].compact.each(&:close)
    end

    it "keeps an exception raised into its wait for the next take" do
      taker = Kino::Native.taker(server_id, 0)
      socket = connect_with(request("/one"), port)
      first = taker.take
      result = Queue.new
      worker = Thread.new do
        Thread.current.report_on_exception = false
        result << [:returned, taker.respond_and_take(first["kino.request"], 200, {}, ["one"])]
        result << [:took, taker.take]
      rescue StandardError => e
        result << [:raised, e.message]
      end
      expect(read_response(socket).body).to eq("one")
      sleep 0.2 # the worker is waiting for a request that does not come
      worker.raise(RuntimeError, "interrupted")
      expect(result.pop).to eq(%i[returned take])
      expect(result.pop).to eq([:raised, "interrupted"])
      worker.join(2)
      taker.close
      expect { taker.take }.to raise_error(Kino::Error, "the taker is closed")
    ensure
      socket&.close
    end

    it "leaves any answer but a plain one to its caller, untouched" do
      taker = Kino::Native.taker(server_id, 0)
      socket = connect_with(request("/one"), port)
      request = taker.take["kino.request"]
      closable = ["x"]
      closable.define_singleton_method(:close) { nil }
      [[200, {}, closable], [200, {}, Class.new(Array).new], [99, {}, []], [200, [], []], [200, {}, Object.new],
       [200.0, {}, []]].each do |answer|
        expect(taker.respond_and_take(request, *answer)).to eq(:unanswered), answer.inspect
      end
      expect(request.claimed?).to be(false)
      Kino::Native.respond(request, 200, {}, ["one"])
      expect(read_response(socket).body).to eq("one")
    ensure
      socket&.close
    end

    it "raises Kino::Error for an unknown server" do
      expect { Kino::Native.taker(server_id + 1000) }.to raise_error(Kino::Error, /no server with id/)
    end
  end
end
