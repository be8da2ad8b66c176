# frozen_string_literal: true

require "kino"

# Shareable apps and hooks for :ractor mode. Hooks that run inside workers
# report through files, the one thing a worker ractor and the spec share.
module RactorModeApps
  module Hello
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["hello from #{Ractor.current.name}\n"]]
    end
  end

  module Fails
    def self.call(env)
      raise KeyError, "no such thing: #{env['PATH_INFO']}"
    end
  end

  # on_error runs in the worker that served the request: it writes the
  # error, and where it ran, to the file the request names.
  ON_ERROR = Ractor.make_shareable(lambda do |error, env|
    File.write(env["HTTP_X_REPORT_TO"], "#{error.class}: #{error.message} in #{Ractor.current.name}")
  end)

  # An after_worker_boot hook that marks, in +dir+, each worker it ran in.
  # The lambda captures a variable assigned once: Ruby 4.0 refuses to make
  # a proc shareable when an outer variable it reads may be reassigned.
  def self.boot_marker(dir)
    marks_dir = dir.dup.freeze
    Ractor.make_shareable(-> { File.write(File.join(marks_dir, Ractor.current.name.to_s), "") })
  end
end

RSpec.describe "Mode choice and :ractor mode" do
  def fixture_app(name)
    app = Rack::Builder.parse_file(File.join(ServerHelper::FIXTURES, name))
    app.is_a?(Array) ? app.first : app
  end

  def new_server(app, **options)
    server = Kino::Server.new(app, log: StringIO.new, bind: "127.0.0.1", **options)
    (@servers ||= []) << server # torn down after the example if it started after all
    server
  end

  describe "mode :ractor with an app that cannot be shared" do
    {
      "capture.ru" => ["app (captured variable `counts`): holds a Hash, which is not shareable",
                       "spec/fixtures/capture.ru:7"],
      "class_ivar.ru" => ["KinoFixtureClassIvarApp.@cache: holds a Hash; worker ractors cannot read it",
                          "spec/fixtures/class_ivar.ru:6"]
    }.each do |fixture, (summary, location)|
      it "fails before binding with UnshareableAppError naming what stands in the way (#{fixture})" do
        blocker = TCPServer.new("127.0.0.1", 0)
        port = blocker.addr[1]
        # The port is taken: had :ractor mode bound before checking the app,
        # this would be the bind error instead.
        expect { new_server(fixture_app(fixture), port: port, mode: :threaded).start }
          .to raise_error(Kino::Error, %r{cannot listen on tcp://127\.0\.0\.1:#{port}})

        server = new_server(fixture_app(fixture), port: port, mode: :ractor)
        expect { server.start }.to raise_error(Kino::UnshareableAppError) { |error|
          expect(error.message.lines.first).to eq("the app cannot run in :ractor mode (1 blocker):\n")
          expect(error.message).to include("  - #{summary} (#{File.join(ServerHelper::ROOT, location)})")
          expect(error.message).to end_with("Run it with `mode :threaded`, or fix the above (kino --check re-checks).")
        }
        expect(server.running?).to be(false)
        expect(server.addresses).to eq([])
      ensure
        blocker&.close
      end
    end

    it "names a hook that runs in workers and cannot be shared" do
      queue = Queue.new
      server = new_server(RactorModeApps::Hello, port: 0, mode: :ractor, after_worker_boot: -> { queue << :booted })
      expect { server.start }
        .to raise_error(Kino::UnshareableAppError, /^  - after_worker_boot: a lambda whose self is/)
      expect(server.running?).to be(false)
    end
  end

  describe "mode :auto" do
    it "falls back to :threaded with a one-line warning naming the reason, and serves the app as it is" do
      start_server(fixture_app("capture.ru"), mode: :auto, lint: false)
      expect(server.mode).to eq(:threaded)
      expect(server_log.lines).to eq([
                                       "#{said_by}running in :threaded mode: app (captured variable `counts`): " \
                                       "holds a Hash, which is not shareable (`kino --check` lists every blocker)\n"
                                     ])
      # The captured Hash is shared by all requests, as in any threaded server.
      expect(Array.new(2) { http_get("/").body }).to eq(["hit 1\n", "hit 2\n"])
    end

    it "names a class-level instance variable as the reason for the fallback" do
      start_server(fixture_app("class_ivar.ru"), mode: :auto, lint: false)
      expect(server.mode).to eq(:threaded)
      expect(server_log.lines.grep(/running in :threaded mode/))
        .to eq(["#{said_by}running in :threaded mode: KinoFixtureClassIvarApp.@cache: holds a Hash; worker ractors " \
                "cannot read it (`kino --check` lists every blocker)\n"])
      expect(http_get("/x").body).to eq("cached /x\n")
    end

    it "takes :ractor mode, without a warning, when the app can be shared" do
      start_server(RactorModeApps::Hello, mode: :auto, workers: 1, threads: 1)
      expect(server.mode).to eq(:ractor)
      expect(server.stats).to include(mode: :ractor, threads: 1)
      expect(http_get("/").body).to eq("hello from kino-worker-0\n")
      expect(server_log).to eq("")
    end
  end

  describe "mode :ractor" do
    it "serves a middleware stack frozen with freeze_app through every middleware" do
      start_server(fixture_app("stack.ru"), mode: :ractor, workers: 2, threads: 1)
      expect(server.mode).to eq(:ractor)
      response = read_response(connect_with("GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      expect(response.status).to eq(200)
      expect(response.body).to eq("stacked\n")
      expect(response["content-length"]).to eq("8") # Rack::ContentLength
      expect(response["etag"]).to match(%r{\AW/"\h{32}"\z}) # Rack::ETag
      expect(response["x-path"]).to eq("/page")
      socket = connect_with("HEAD /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      head = read_response(socket, head: true)
      expect([head.status, head["content-length"]]).to eq([200, "8"])
      expect(read_to_eof(socket)).to eq("")
    end

    it "runs after_worker_boot inside each worker ractor" do
      dir = File.dirname(signal_path("boot"))
      start_server(RactorModeApps::Hello, mode: :ractor, workers: 2, threads: 1,
                                          after_worker_boot: RactorModeApps.boot_marker(dir))
      %w[kino-worker-0 kino-worker-1].each { |name| wait_for_file(File.join(dir, name)) }
    end

    it "runs on_error inside the worker that served the failing request" do
      report = signal_path("report")
      start_server(RactorModeApps::Fails, mode: :ractor, workers: 1, threads: 1, on_error: RactorModeApps::ON_ERROR)
      expect(http_get("/missing", { "X-Report-To" => report }).code).to eq("500")
      expect(wait_for_report(report)).to eq("KeyError: no such thing: /missing in kino-worker-0")
    end
  end
end
