# frozen_string_literal: true

require "pathname"
require "kino/configuration"

RSpec.describe Kino::DSL do
  include_context "in a fresh directory"

  # Loads +source+ as kino.rb through Kino::Configuration, the way `kino`
  # does, and returns the Configuration.
  def load_config(source, name: "kino.rb")
    write(name, source)
    Dir.chdir(@dir) { Kino::Configuration.new({}, config_file: name).load }
  end

  def config_error(source, name: "kino.rb")
    load_config(source, name: name)
  rescue Kino::ConfigError => e
    e.message
  else
    raise "expected #{source.inspect} to raise Kino::ConfigError"
  end

  describe "values it accepts" do
    it "sets each directive it is given" do
      configuration = load_config(<<~RUBY)
        workers 2
        threads 4
        mode :threaded
        io_threads 3
        queue_depth 64
        queue_timeout 0.5
        request_timeout 10
        max_connections 100
        max_body_size 1024
        max_header_size 8192
        max_uri_size 2048
        max_headers 20
        first_data_timeout 5
        persistent_timeout 6
        backlog 128
        shutdown_timeout 0
        batch 8
        lanes
        log_requests false
        log_format "json"
        environment :production
        pidfile "tmp/kino.pid"
        rackup "app.ru"
        control_bind "127.0.0.1:9293"
        control_token "secret"
        quarantine_timeout 60
        quarantine_max 0
        tls cert: "cert.pem", key: "key.pem"
      RUBY
      expect(configuration.to_h).to include(
        workers: 2, threads: 4, mode: :threaded, io_threads: 3, queue_depth: 64,
        queue_timeout: 0.5, request_timeout: 10, max_connections: 100, max_body_size: 1024,
        max_header_size: 8192, max_uri_size: 2048, max_headers: 20, first_data_timeout: 5,
        persistent_timeout: 6, backlog: 128, shutdown_timeout: 0, batch: 8, lanes: true,
        log_requests: false, log_format: :json, environment: "production", pidfile: "tmp/kino.pid",
        rackup: "app.ru", control_bind: "127.0.0.1:9293", control_token: "secret",
        quarantine_timeout: 60, quarantine_max: 0, tls: { cert: "cert.pem", key: "key.pem" }
      )
    end

    it "reads numbers from Strings, as ENV gives them" do
      configuration = load_config("workers \"3\"\nport \"8080\"\nqueue_timeout \"2.5\"\n")
      expect(configuration.to_h).to include(workers: 3, port: 8080, queue_timeout: 2.5)
    end

    it "takes the mode as a String too" do
      expect(load_config("mode \"ractor\"\n")[:mode]).to eq(:ractor)
    end

    it "treats tokio_threads as io_threads" do
      expect(load_config("tokio_threads 6\n")[:io_threads]).to eq(6)
    end

    it "uses the max of Puma's threads min, max" do
      expect(load_config("threads 0, 16\n")[:threads]).to eq(16)
    end

    it "accepts nil where nil turns a feature off" do
      configuration = load_config("max_body_size nil\nrequest_timeout nil\nmax_connections nil\n" \
                                  "min_body_rate nil\nmax_spool_size nil\n")
      expect(configuration.to_h).to include(max_body_size: nil, request_timeout: nil, max_connections: nil,
                                            min_body_rate: nil, max_spool_size: nil)
    end

    it "takes paths as Pathnames" do
      expect(load_config("pidfile Pathname(\"tmp/kino.pid\")\n")[:pidfile]).to eq("tmp/kino.pid")
    end

    it "gives the file its own absolute path in __dir__" do
      expect(load_config("rackup File.join(__dir__, \"app.ru\")\n")[:rackup])
        .to eq(File.join(File.realpath(@dir), "app.ru"))
    end

    it "loads the earlier Kino's io_shards, http2, max_workers and scale_down_after with their values" do
      configuration = load_config("workers 2\nio_shards true\nhttp2 true\nmax_workers 16\nscale_down_after 45\n")
      expect(configuration.to_h).to include(io_shards: true, http2: true, max_workers: 16, scale_down_after: 45)
    end

    it "takes the forms the earlier Kino documents for them" do
      configuration = load_config("io_shards\nhttp2 false\nmax_workers \"8\"\nscale_down_after \"2.5\"\n")
      expect(configuration.to_h).to include(io_shards: true, http2: false, max_workers: 8, scale_down_after: 2.5)
      expect(load_config("max_workers nil\n")[:max_workers]).to be_nil
    end

    it "lets the last of two settings win, except bind, which adds" do
      configuration = load_config("workers 2\nworkers 3\nbind \"0.0.0.0\"\nbind \"::1\"\n")
      expect(configuration[:workers]).to eq(3)
      expect(configuration[:bind]).to eq(["0.0.0.0", "::1"])
    end
  end

  describe "bad values" do
    it "names the file, the line and the directive" do
      expect(config_error("port 3000\n\nworkers \"two\"\n"))
        .to eq('kino.rb:3: workers must be a positive Integer (got "two")')
    end

    it "names the file as it was given" do
      expect(config_error("workers 0\n", name: "config/kino.rb"))
        .to eq("config/kino.rb:1: workers must be a positive Integer (got 0)")
    end

    {
      "workers 0" => "workers must be a positive Integer (got 0)",
      "workers 2.5" => "workers must be a positive Integer (got 2.5)",
      "port 70000" => "port must be an Integer from 0 to 65535 (got 70000)",
      "port(-1)" => "port must be an Integer from 0 to 65535 (got -1)",
      "mode :fast" => "mode must be one of :auto, :ractor, :threaded (got :fast)",
      "log_format :xml" => "log_format must be one of :text, :json (got :xml)",
      "queue_timeout(-1)" => "queue_timeout must be a number of seconds, 0 or more (got -1)",
      "request_timeout 0" => "request_timeout must be a positive number of seconds, or nil for none (got 0)",
      "first_data_timeout \"soon\"" => 'first_data_timeout must be a positive number of seconds (got "soon")',
      "threads 0" => "threads must be a positive Integer (got 0)",
      "threads 5, 2" => "threads min, max needs Integers with 0 <= min <= max and max >= 1 (got 5, 2)",
      "max_body_size(-1)" => "max_body_size must be an Integer, 0 or more (got -1)",
      "lanes \"yes\"" => 'lanes must be true or false (got "yes")',
      "batch 0" => "batch must be an Integer from 1 to 64 (got 0)",
      "batch 65" => "batch must be an Integer from 1 to 64 (got 65)",
      "environment \"\"" => 'environment must be a non-empty String (got "")',
      "rackup nil" => "rackup must be a non-empty String (got nil)",
      "tls cert: \"c.pem\", key: 42" => "tls key must be a non-empty String (got 42)",
      "control_token 123" => "control_token must be a non-empty String (got 123)",
      'control_token "s3cret\n"' => "control_token must be a Bearer token (letters, digits and -._~+/, then any =): " \
                                    '"s3cret\\n" is not (strip its newline)',
      'control_token "two words"' => "control_token must be a Bearer token (letters, digits and -._~+/, then any =): " \
                                     '"two words" is not',
      "body_buffer_size(-1)" => "body_buffer_size must be an Integer, 0 or more (got -1)",
      "stream_request_bodies \"yes\"" => 'stream_request_bodies must be true or false (got "yes")',
      "intern_header_values 1" => "intern_header_values must be true or false (got 1)",
      "min_body_rate 1.5" => "min_body_rate must be an Integer, 0 or more (got 1.5)",
      "min_body_rate_window 0" => "min_body_rate_window must be a positive number of seconds (got 0)",
      "max_spool_size(-1)" => "max_spool_size must be an Integer, 0 or more (got -1)",
      "control_bind \"127.0.0.1\"" => 'control_bind needs a port, as in "127.0.0.1:9293" (got "127.0.0.1")',
      "bind \"ssl://0.0.0.0:443\"" => 'bind cannot listen on "ssl://0.0.0.0:443": Kino listens on tcp:// ' \
                                      "and unix:// (HTTPS comes from the tls directive)",
      "bind \"tcp://0.0.0.0:99999\"" => 'bind cannot read "tcp://0.0.0.0:99999" as an address ' \
                                        "(expected HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH)",
      "bind \"unix://\"" => 'bind needs a socket path after unix:// (got "unix://")',
      "bind 8080" => "bind needs an address such as HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH (got 8080)",
      "io_shards \"yes\"" => 'io_shards must be true or false (got "yes")',
      "http2 1" => "http2 must be true or false (got 1)",
      "max_workers 0" => "max_workers must be a positive Integer (got 0)",
      "max_workers \"many\"" => 'max_workers must be a positive Integer (got "many")',
      "scale_down_after 0" => "scale_down_after must be a positive number of seconds (got 0)",
      "scale_down_after \"later\"" => 'scale_down_after must be a positive number of seconds (got "later")',
      "on_error" => "on_error needs a block or an object that responds to #call (got nil)",
      "after_boot 42" => "after_boot needs a block or an object that responds to #call (got 42)",
      "after_boot(-> {}) { }" => "after_boot takes a block or a callable, not both"
    }.each do |line, message|
      it "refuses `#{line}`" do
        expect(config_error("# a comment\n#{line}\n")).to eq("kino.rb:2: #{message}")
      end
    end

    it "names the directive called with the wrong arguments" do
      expect(config_error("tls \"cert.pem\"\n"))
        .to eq("kino.rb:1: tls: wrong number of arguments (given 1, expected 0; required keywords: cert, key)")
    end
  end

  describe "processes, preload_app and the fork hooks" do
    it "reads them" do
      config = load_config(<<~RUBY)
        processes "3"
        preload_app false
        before_fork { :parent }
        after_fork { |index| index }
      RUBY
      expect(config[:processes]).to eq(3)
      expect(config[:preload_app]).to be(false)
      expect(config[:before_fork].call).to eq(:parent)
      expect(config[:after_fork].call(2)).to eq(2)
    end

    it "defaults to one process, preloading" do
      config = load_config("")
      expect(config[:processes]).to eq(1)
      expect(config[:preload_app]).to be(true)
    end

    it "names the file and line of a bad value" do
      expect(config_error("workers 2\nprocesses 0\n"))
        .to eq("kino.rb:2: processes must be a positive Integer (got 0)")
      expect(config_error("preload_app :yes\n")).to eq("kino.rb:1: preload_app must be true or false (got :yes)")
      expect(config_error("after_fork 42\n"))
        .to eq("kino.rb:1: after_fork needs a block or an object that responds to #call (got 42)")
    end
  end

  describe "unknown directives" do
    it "suggests the directive that was probably meant" do
      expect(config_error("workers 2\n\n\n\n\n\nwrokers 3\n"))
        .to eq("kino.rb:7: unknown directive 'wrokers' (did you mean 'workers'?)")
    end

    it "says only that it is unknown when nothing is close" do
      expect(config_error("daemonize\n")).to eq("kino.rb:1: unknown directive 'daemonize'")
    end
  end

  describe "errors in the Ruby of the file" do
    it "reports a syntax error with file and line" do
      expect(config_error("workers 2\n\nthreads(\n")).to start_with("kino.rb:3: syntax error")
    end

    it "reports an exception raised in the file with file, line and class" do
      expect(config_error("workers 2\nworkers ENV.fetch(\"KINO_SPEC_UNSET_VARIABLE\")\n"))
        .to eq('kino.rb:2: key not found: "KINO_SPEC_UNSET_VARIABLE" (KeyError)')
    end

    it "reports an unknown constant with file and line" do
      expect(config_error("\nworkers Kino::NoSuchThing::COUNT\n")).to start_with("kino.rb:2: uninitialized constant")
    end

    it "reports a failing require with file and line" do
      expect(config_error("require \"kino_spec_no_such_library\"\n"))
        .to start_with("kino.rb:1: cannot load such file -- kino_spec_no_such_library (LoadError)")
    end
  end

  describe "the sample config written by kino --init" do
    let(:template_path) { File.expand_path("../lib/kino/templates/kino.rb", __dir__) }
    let(:template) { File.read(template_path) }

    # Each directive's example is one commented line: "# <directive> ...".
    let(:example_lines) do
      template.lines.filter_map do |line|
        code = line[/\A# (([a-z][a-z0-9_]*)\b.*)/, 1]
        code if code && Kino::DSL.directives.include?(Regexp.last_match(2).to_sym)
      end
    end

    it "loads without error and changes nothing as written" do
      configuration = load_config(template)
      expect(configuration.to_h).to eq(Kino::Configuration::DEFAULTS.merge(bind: ["127.0.0.1"]))
    end

    it "has an example for every directive" do
      directives = example_lines.map { |code| code[/\A[a-z][a-z0-9_]*/].to_sym }
      expect(directives).to match_array(Kino::DSL.directives - [:tokio_threads])
    end

    it "has examples that load when uncommented" do
      example_lines.each do |code|
        expect { load_config("#{code}\n") }.not_to raise_error, code
      end
    end
  end

  describe "the documentation of each directive" do
    # Puma's dsl.rb shape: a comment above each directive that gives its
    # default and at least one example.
    it "gives a default and an example above every directive" do
      source = File.read(File.expand_path("../lib/kino/dsl.rb", __dir__)).lines
      undocumented = (Kino::DSL.directives - [:tokio_threads]).reject do |directive|
        definition = source.index { |line| line.match?(/\A\s*def #{directive}\b/) }
        comment = source[0...definition].reverse.take_while { |line| line.strip.start_with?("#") }
        comment.any? { |line| line.include?("The default is") } && comment.any? { |line| line.include?("@example") }
      end
      expect(undocumented).to be_empty
    end
  end
end
