# frozen_string_literal: true

require "kino"

# Directives of the earlier Kino that this one accepts before it builds
# them: a config written for it loads and each value is checked (dsl_spec.rb
# has those examples), and a server started with one says at boot that it
# has no effect, from the CLI and when embedded. TLS is configured only
# through `tls`: an ssl:// bind or Puma's ssl_bind refuses to start.
RSpec.describe "Directives accepted but not in effect yet" do
  include_context "in a fresh directory"

  def warning(name, pid: Process.pid)
    "#{said_by(pid: pid)}warning: `#{name}` is not implemented in this version yet; it has no effect\n"
  end

  hello = ->(_env) { [200, { "content-type" => "text/plain" }, ["hello\n"]] }

  describe "an embedded server" do
    it "warns at start about each directive set that has no effect, and serves" do
      start_server(hello, io_shards: true, http2: true, max_workers: 4, scale_down_after: 10)
      warnings = %w[io_shards http2 max_workers scale_down_after].map { |n| warning(n) }
      expect(server_log.lines).to match_array(warnings)
      expect(http_get("/").body).to eq("hello\n")
    end

    it "says nothing of such directives left at their defaults" do
      start_server(hello, http2: false, scale_down_after: 30, io_shards: false, batch: 1)
      expect(server_log).to eq("")
      expect(http_get("/").body).to eq("hello\n")
    end
  end

  describe "exe/kino" do
    let(:port) { free_port }

    it "boots a config of the earlier Kino, warns once per inactive directive, and serves" do
      config = write("kino.rb", <<~RUBY)
        workers 1
        threads 1
        io_shards true
        http2 true
        max_workers 4
        scale_down_after 60
      RUBY
      kino = spawn_kino("-C", config, "-m", "threaded", "spec/fixtures/hello.ru", port: port)
      expect(http_get("/", port: port).body).to eq("Hello from Kino\n")
      expect(kino.stderr.lines).to match_array(%w[io_shards http2 max_workers scale_down_after].map { |n|
        warning(n, pid: kino.pid)
      })
    end

    {
      "bind \"ssl://127.0.0.1:9443\"" => %r{kino\.rb:1: bind cannot listen on "ssl://127\.0\.0\.1:9443"},
      "ssl_bind \"127.0.0.1\", 9443, cert: \"cert.pem\", key: \"key.pem\"" => /kino\.rb:1: unknown directive 'ssl_bind'/
    }.each do |line, message|
      it "refuses to start with `#{line.split.first}` (never plain HTTP where TLS was configured)" do
        config = write("kino.rb", "#{line}\n")
        kino = spawn_kino("-C", config, "spec/fixtures/hello.ru", port: port, wait: false)
        expect(kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)&.exitstatus).to eq(1)
        expect(kino.stderr).to match(message)
        expect(kino.stdout).not_to include("Listening")
      end
    end
  end
end
