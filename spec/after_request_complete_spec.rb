# frozen_string_literal: true

require "kino"

# after_request_complete through a real server, in both modes: when it
# runs (once the response is out, after a streamed body's close), what it
# gets (the env and the status sent), and that a failing hook touches
# neither the response nor the worker. Hooks in worker ractors share nothing
# with the spec, so they report by appending to the file a request names
# in X-Report-To.
module AfterRequestCompleteApps
  # /missing answers 404, /boom raises, /broken breaks the Rack contract,
  # /stream and /stream-call stream a body (each, call) that records its
  # close, /stream-boom one that raises after its first chunk; anything
  # else answers 200 (to HEAD as to GET).
  module App
    def self.call(env)
      case env["PATH_INFO"]
      when "/missing" then [404, HttpApps.text, ["no such thing\n"]]
      when "/boom" then raise KeyError, "boom"
      when "/broken" then ["200", HttpApps.text, ["a String status\n"]]
      when "/stream" then [200, HttpApps.text, Streamed.new(env["HTTP_X_REPORT_TO"])]
      when "/stream-call" then [200, HttpApps.text, StreamedCall.new(env["HTTP_X_REPORT_TO"])]
      when "/stream-boom" then [200, HttpApps.text, StreamedBoom.new(env["HTTP_X_REPORT_TO"])]
      else [200, HttpApps.text, ["ok\n"]]
      end
    end
  end

  # An each body whose close is written to the report, so the spec sees
  # what came first: the close or the hook.
  class Streamed
    def initialize(report)
      @report = report
    end

    def each
      yield "one\n"
      yield "two\n"
    end

    def close
      AfterRequestCompleteApps.append(@report, "body closed")
    end
  end

  # The same as a Rack 3 streaming body, which writes to the stream.
  class StreamedCall < Streamed
    undef_method :each

    def call(stream)
      stream << "one\n" << "two\n"
      stream.close
    end
  end

  class StreamedBoom < Streamed
    def each
      yield "one\n"
      raise IOError, "the body broke"
    end
  end

  def self.append(path, line)
    File.open(path, "a") { |file| file.write("#{line}\n") }
  end

  RECORD = Ractor.make_shareable(lambda do |env, status|
    AfterRequestCompleteApps.append(env["HTTP_X_REPORT_TO"], "#{status} #{env['REQUEST_METHOD']} #{env['PATH_INFO']}")
  end)

  FAILING = Ractor.make_shareable(lambda do |env, status|
    raise ArgumentError, "the hook broke on #{env['PATH_INFO']}" if env["PATH_INFO"] == "/hook-fails"

    RECORD.call(env, status)
  end)
end

RSpec.describe "after_request_complete" do
  include_context "in a fresh directory"

  let(:report) { signal_path("report") }

  # The lines the hook appended, once there are +count+ of them.
  def reported(count)
    wait_until(message: -> { "the hook reported #{File.exist?(report) ? File.read(report).inspect : 'nothing'}" }) do
      File.exist?(report) && File.read(report).lines.size >= count
    end
    File.read(report).lines.map(&:chomp)
  end

  def request(method, path)
    socket = connect_with("#{method} #{path} HTTP/1.1\r\nHost: x\r\nX-Report-To: #{report}\r\n\r\n")
    read_response(socket, head: method == "HEAD")
  end

  in_each_mode do |mode|
    def serve_with(hook)
      serve(AfterRequestCompleteApps::App, workers: 1, threads: 1, lint: false, after_request_complete: hook)
    end

    it "gets the env and the status sent: the app's, or 500 when it raised or broke the contract" do
      serve_with(AfterRequestCompleteApps::RECORD)
      expect(server.mode).to eq(mode)
      statuses = [["GET", "/"], ["GET", "/missing"], ["GET", "/boom"], ["GET", "/broken"], ["HEAD", "/"]]
                 .map { |method, path| request(method, path).status }
      expect(statuses).to eq([200, 404, 500, 500, 200])
      expect(reported(5)).to eq(["200 GET /", "404 GET /missing", "500 GET /boom", "500 GET /broken", "200 HEAD /"])
    end

    %w[/stream /stream-call].each do |path|
      it "runs after a streamed body has written its last chunk and been closed (#{path})" do
        serve_with(AfterRequestCompleteApps::RECORD)
        response = request("GET", path)
        expect([response.status, response.body, response.complete?]).to eq([200, "one\ntwo\n", true])
        expect(reported(2)).to eq(["body closed", "200 GET #{path}"])
      end
    end

    it "gets 500 for a body that failed after its head was out, once the body is closed" do
      serve_with(AfterRequestCompleteApps::RECORD)
      response = request("GET", "/stream-boom")
      expect([response.status, response.body, response.complete?]).to eq([200, "one\n", false])
      expect(reported(2)).to eq(["body closed", "500 GET /stream-boom"])
    end

    it "logs a hook that raises in one line, and the worker goes on serving" do
      serve_with(AfterRequestCompleteApps::FAILING)
      response = request("GET", "/hook-fails")
      expect([response.status, response.body]).to eq([200, "ok\n"])
      # One worker thread: this answer means the failed hook's turn is over.
      expect(request("GET", "/missing").status).to eq(404)
      expect(reported(1)).to eq(["404 GET /missing"])
      expect(wait_for_log(/hook failed/)).to eq("#{said_by('worker-0')}after_request_complete hook failed: " \
                                                "ArgumentError: the hook broke on /hook-fails\n")
    end

    it "takes effect from a kino.rb loaded by `kino`" do
      config = write("kino.rb", <<~RUBY)
        workers 1
        threads 1
        report = #{report.inspect}.freeze
        after_request_complete { |env, status| File.write(report, "\#{status} \#{env['PATH_INFO']}\\n", mode: "a") }
      RUBY
      port = free_port
      spawn_kino("-C", config, "-m", mode.to_s, "spec/fixtures/hello.ru", port: port)
      expect(http_get("/hello", port: port).code).to eq("200")
      expect(reported(1)).to eq(["200 /hello"])
    end
  end

  it "sends the app to :threaded under mode :auto when the hook cannot be shared, and runs it there" do
    seen = Thread::Queue.new
    hook = ->(env, status) { seen << [env["PATH_INFO"], status] }
    start_server(AfterRequestCompleteApps::App, mode: :auto, workers: 1, threads: 1, lint: false,
                                                after_request_complete: hook)
    expect(server.mode).to eq(:threaded)
    expect(server_log).to start_with("#{said_by}running in :threaded mode: after_request_complete: ")
    expect(http_get("/missing").code).to eq("404")
    expect(seen.pop(timeout: 5)).to eq(["/missing", 404])
  end

  it "refuses a value that cannot be called, naming the file and line" do
    config = write("kino.rb", "workers 1\nafter_request_complete 42\n")
    expect { Kino::Configuration.new({}, config_file: config).load }
      .to raise_error(Kino::ConfigError, "#{config}:2: after_request_complete needs a block or an object " \
                                         "that responds to #call (got 42)")
  end

  it "refuses one given to Kino::Server.new that cannot be called" do
    expect { Kino::Server.new(AfterRequestCompleteApps::App, after_request_complete: "log it") }
      .to raise_error(Kino::ConfigError,
                      'after_request_complete needs a block or an object that responds to #call (got "log it")')
  end
end
