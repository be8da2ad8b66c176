# frozen_string_literal: true

require "kino"

# on_error through a real server, in both modes: when it runs (after the
# client has its answer), what it gets (the request's env), and what it
# does not hear of (a body its client cut off). Hooks are shareable and
# report through files named in the request, which worker ractors and the
# spec share.
module OnErrorApps
  # /boom marks the env and raises; /stream-boom raises while its body
  # streams, after the head is out; /upload reads the whole body, and
  # /upload-wrapped wraps the read's error in one of its own, as an upload
  # library may; anything else answers 200.
  module App
    def self.call(env)
      case env["PATH_INFO"]
      when "/boom"
        env["kino.spec.mark"] = "set by the app"
        raise KeyError, "boom"
      when "/stream-boom"
        [200, { "content-type" => "text/plain" }, Failing.new]
      when "/upload" then read_all(env)
      when "/upload-wrapped"
        begin
          read_all(env)
        rescue EOFError
          raise ArgumentError, "upload failed"
        end
      else
        [200, { "content-type" => "text/plain" }, ["ok\n"]]
      end
    end

    def self.read_all(env)
      input = env["rack.input"]
      buffer = String.new(capacity: 65_536)
      size = 0
      size += buffer.bytesize while input.read(65_536, buffer)
      [200, { "content-type" => "text/plain" }, ["read #{size}\n"]]
    end
  end

  class Failing
    def each
      yield "partial\n"
      raise IOError, "the body broke"
    end
  end

  # Waits at the X-Gate file before it writes what it got to X-Report-To:
  # the spec holds it there while it looks at what the client has.
  SLOW_REPORT = Ractor.make_shareable(lambda do |error, env|
    HttpApps::Gate.wait(env["HTTP_X_GATE"])
    File.write(env["HTTP_X_REPORT_TO"],
               "#{error.class}: #{error.message} on #{env['PATH_INFO']}, mark: #{env['kino.spec.mark'].inspect}")
  end)

  RECORD = Ractor.make_shareable(lambda do |error, env|
    File.write(env["HTTP_X_REPORT_TO"], "#{error.class}: #{error.message}")
  end)
end

RSpec.describe "on_error" do
  def mib
    1024 * 1024
  end

  in_each_mode do |mode|
    it "runs after the client has its 500, with the env the app was given" do
      gate = signal_path("gate")
      report = signal_path("report")
      start_server(OnErrorApps::App, mode: mode, workers: 1, threads: 1, lint: false,
                                     on_error: OnErrorApps::SLOW_REPORT)
      expect(server.mode).to eq(mode)
      socket = connect_with("GET /boom HTTP/1.1\r\nHost: x\r\nX-Gate: #{gate}\r\nX-Report-To: #{report}\r\n\r\n")
      # The hook waits at its gate for longer than this read waits.
      response = read_response(socket)
      expect([response.status, response.body]).to eq([500, "Internal Server Error\n"])
      expect(File.exist?(report)).to be(false)

      open_gate(gate)
      written = wait_for_report(report, message: -> { "on_error never finished\n#{server_log}" })
      expect(written).to eq('KeyError: boom on /boom, mark: "set by the app"')
      # One line saying what failed and where, then the app's own frames
      # (relative to the working directory), the rest folded.
      lines = wait_for_log(/500 GET/).lines
      expect(lines.first).to eq("#{said_by('worker-0')}500 GET /boom · KeyError: boom (spec/on_error_spec.rb:20)\n")
      expect(lines[1]).to start_with("    spec/on_error_spec.rb:20:in ")
      expect(lines.drop(1)).to all(start_with("    spec/").or(match(/\A    … \d+ more\n\z/)))
      expect(lines.last).to match(/\A    … \d+ more\n\z/)
    end

    it "runs after a response that broke while streaming has been cut off" do
      gate = signal_path("gate")
      report = signal_path("report")
      start_server(OnErrorApps::App, mode: mode, workers: 1, threads: 1, lint: false,
                                     on_error: OnErrorApps::SLOW_REPORT)
      socket = connect_with("GET /stream-boom HTTP/1.1\r\nHost: x\r\nX-Gate: #{gate}\r\nX-Report-To: #{report}\r\n\r\n")
      response = read_response(socket)
      expect([response.status, response.body, response.complete?]).to eq([200, "partial\n", false])
      expect(File.exist?(report)).to be(false)

      open_gate(gate)
      written = wait_for_report(report, message: -> { "on_error never finished\n#{server_log}" })
      expect(written).to eq("IOError: the body broke on /stream-boom, mark: nil")
    end

    %w[/upload /upload-wrapped].each do |path|
      it "does not call it for a client that vanished mid-upload, and logs one line (#{path})" do
        report = signal_path("report")
        # Only a streamed body reaches the app before it is whole.
        start_server(OnErrorApps::App, mode: mode, workers: 1, threads: 1, lint: false,
                                       on_error: OnErrorApps::RECORD, stream_request_bodies: true)
        socket = connect_with("POST #{path} HTTP/1.1\r\nHost: x\r\nContent-Length: #{2 * mib}\r\n" \
                              "X-Report-To: #{report}\r\n\r\n")
        socket.write("a" * 100_000)
        wait_until(message: -> { "the upload never reached the app: #{server.stats}" }) { requests_in_app == 1 }
        socket.close

        wait_for_log(/cut off/)
        # One worker thread: this answer means the upload's turn is over,
        # on_error included.
        expect(http_get("/").body).to eq("ok\n")
        expect(File.exist?(report)).to be(false)
        said = Regexp.escape(said_by("worker-0"))
        expect(server_log).to match(/\A#{said}request body of POST #{path} cut off: [^\n]+\n\z/)
      end
    end
  end
end
