# frozen_string_literal: true

require "tmpdir"
require "kino"

# Directives of the earlier Kino that this one accepts before it builds
# them: a config written for it loads, each value is checked, and a server
# started with one says at boot that it has no effect, from the CLI and
# when embedded. `tls` is the exception: until TLS is built a server with
# it set refuses to start, so it never serves plain HTTP where HTTPS was
# asked for.
RSpec.describe "Directives accepted but not in effect yet" do
  around do |example|
    Dir.mktmpdir("kino-inactive") do |dir|
      @dir = dir
      example.run
    end
  end

  def write(name, source)
    File.join(@dir, name).tap { |path| File.write(path, source) }
  end

  def load_config(source)
    path = write("kino.rb", source)
    Kino::Configuration.new({}, config_file: path).load
  end

  def config_error(source)
    load_config(source)
  rescue Kino::ConfigError => e
    e.message.sub("#{@dir}/", "")
  else
    raise "expected #{source.inspect} to raise Kino::ConfigError"
  end

  def warning(name)
    "kino: warning: `#{name}` is not implemented in this version yet; it has no effect\n"
  end

  hello = ->(_env) { [200, { "content-type" => "text/plain" }, ["hello\n"]] }

  describe "the earlier Kino's io_shards, http2, max_workers and scale_down_after" do
    it "load from a config file with their values" do
      configuration = load_config(<<~RUBY)
        workers 2
        io_shards true
        http2 true
        max_workers 16
        scale_down_after 45
      RUBY
      expect(configuration.to_h).to include(io_shards: true, http2: true, max_workers: 16, scale_down_after: 45)
    end

    it "take the forms the earlier Kino documents" do
      configuration = load_config("io_shards\nhttp2 false\nmax_workers \"8\"\nscale_down_after \"2.5\"\n")
      expect(configuration.to_h).to include(io_shards: true, http2: false, max_workers: 8, scale_down_after: 2.5)
      expect(load_config("max_workers nil\n")[:max_workers]).to be_nil
    end

    it "default to what Kino does today: no shards, HTTP/1.1 only, a fixed pool" do
      expect(Kino::Configuration::DEFAULTS).to include(io_shards: false, http2: false, max_workers: nil,
                                                       scale_down_after: 30)
    end

    {
      "io_shards \"yes\"" => 'io_shards must be true or false (got "yes")',
      "http2 1" => "http2 must be true or false (got 1)",
      "max_workers 0" => "max_workers must be a positive Integer (got 0)",
      "max_workers \"many\"" => 'max_workers must be a positive Integer (got "many")',
      "scale_down_after 0" => "scale_down_after must be a positive number of seconds (got 0)",
      "scale_down_after \"later\"" => 'scale_down_after must be a positive number of seconds (got "later")'
    }.each do |line, message|
      it "refuses `#{line}` with the file and line" do
        expect(config_error("workers 1\n#{line}\n")).to eq("kino.rb:2: #{message}")
      end
    end

    it "are refused as options with a bad value too" do
      expect { Kino::Configuration.new({ max_workers: -1 }, search_default_files: false) }
        .to raise_error(Kino::ConfigError, "max_workers must be a positive Integer (got -1)")
    end
  end

  describe "an embedded server" do
    it "warns at start about each directive set that has no effect, and serves" do
      start_server(hello, io_shards: true, http2: true, max_workers: 4, scale_down_after: 10, lanes: true)
      expect(server_log.lines).to match_array(%w[io_shards http2 max_workers scale_down_after lanes].map { |n| warning(n) })
      expect(http_get("/").body).to eq("hello\n")
    end

    it "says nothing of such directives left at their defaults" do
      start_server(hello, http2: false, scale_down_after: 30, io_shards: false, batch: 1)
      expect(server_log).to eq("")
      expect(http_get("/").body).to eq("hello\n")
    end

    it "does not start with tls set, and listens on nothing" do
      port = free_port
      server = Kino::Server.new(hello, log: StringIO.new, port: port, mode: :threaded,
                                       tls: { cert: "cert.pem", key: "key.pem" })
      expect { server.start }.to raise_error(Kino::ConfigError) { |error|
        expect(error.message).to eq("tls is set, but this version of Kino cannot serve TLS yet; it does not start " \
                                    "rather than serve plain HTTP where HTTPS was asked for (terminate TLS in a " \
                                    "proxy in front of Kino, and remove tls)")
      }
      expect(server.running?).to be(false)
      expect { Socket.tcp("127.0.0.1", port, connect_timeout: 1).close }.to raise_error(Errno::ECONNREFUSED)
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
      expect(kino.stderr.lines).to match_array(%w[io_shards http2 max_workers scale_down_after].map { |n| warning(n) })
    end

    it "refuses to start with tls in the config, exits 1, and never listens" do
      config = write("kino.rb", "tls cert: \"cert.pem\", key: \"key.pem\"\n")
      kino = spawn_kino("-C", config, "spec/fixtures/hello.ru", port: port, wait: false)
      expect(kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)&.exitstatus).to eq(1)
      expect(kino.stderr).to eq("kino: tls is set, but this version of Kino cannot serve TLS yet; it does not " \
                                "start rather than serve plain HTTP where HTTPS was asked for (terminate TLS in " \
                                "a proxy in front of Kino, and remove tls)\n")
      expect(kino.stdout).not_to include("Listening")
    end

    {
      "bind \"ssl://127.0.0.1:9443\"" => /kino\.rb:1: bind cannot listen on "ssl:\/\/127\.0\.0\.1:9443"/,
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
