# frozen_string_literal: true

require "kino/configuration"

RSpec.describe Kino::Configuration do
  include_context "in a fresh directory"

  # A Configuration built and loaded from @dir, as `kino` started there.
  def load_in_dir(cli_options = {}, **keywords)
    Dir.chdir(@dir) { described_class.new(cli_options, **keywords).load }
  end

  describe "DEFAULTS" do
    subject(:defaults) { described_class::DEFAULTS }

    it "is frozen and keyed by Symbols" do
      expect(defaults).to be_frozen
      expect(defaults.keys).to all(be_a(Symbol))
    end

    it "has every directive of the earlier Kino and the HTTP hardening ones" do
      earlier = %i[
        bind port workers threads mode queue_depth queue_timeout request_timeout
        max_connections max_body_size batch lanes log_requests on_error after_boot
        after_worker_boot after_request_complete on_worker_exit shutdown_timeout
        io_threads tls environment pidfile control_bind control_token
        quarantine_timeout quarantine_max rackup io_shards http2 max_workers scale_down_after
      ]
      hardening = %i[max_header_size max_uri_size max_headers first_data_timeout persistent_timeout backlog]
      bodies = %i[body_buffer_size stream_request_bodies min_body_rate min_body_rate_window max_spool_size]
      logging = %i[log_format]
      env = %i[intern_header_values]
      processes = %i[processes preload_app before_fork after_fork]
      expect(defaults.keys).to match_array(earlier + hardening + bodies + logging + processes + env)
    end

    it "holds the documented values" do
      expect(defaults).to include(
        bind: "127.0.0.1", port: 9292, mode: :auto, rackup: "config.ru",
        threads: nil, max_connections: nil, quarantine_max: nil,
        max_body_size: 52_428_800, queue_depth: 1024, queue_timeout: 5.0,
        shutdown_timeout: 30, batch: 1, lanes: false, log_requests: false, log_format: :text,
        max_header_size: 65_536, max_uri_size: 8192, max_headers: 100,
        first_data_timeout: 30, persistent_timeout: 20, backlog: 1024,
        environment: nil, pidfile: nil, tls: nil, control_bind: nil,
        control_token: nil, request_timeout: nil, quarantine_timeout: nil,
        on_error: nil, after_boot: nil, after_worker_boot: nil,
        after_request_complete: nil, on_worker_exit: nil,
        body_buffer_size: 114_688, stream_request_bodies: false, min_body_rate: 1024,
        min_body_rate_window: 5, max_spool_size: 1_073_741_824, intern_header_values: false
      )
    end

    it "defaults the earlier Kino's directives to what Kino does today: no shards, HTTP/1.1 only, a fixed pool" do
      expect(defaults).to include(io_shards: false, http2: false, max_workers: nil, scale_down_after: 30)
    end

    it "sizes workers and I/O threads to the machine" do
      expect(defaults[:workers]).to eq(Kino.available_parallelism)
      expect(defaults[:io_threads]).to eq(Kino.available_parallelism)
    end

    it "has a DSL directive for every key, and no directive without a key except the tokio_threads alias" do
      expect(Kino::DSL.directives).to match_array(defaults.keys + [:tokio_threads])
    end
  end

  it "keeps only shareable values in its constants, so worker ractors can read them" do
    [described_class, Kino::DSL].each do |owner|
      owner.constants(false).each do |name|
        expect(Ractor.shareable?(owner.const_get(name))).to be(true), "#{owner}::#{name}"
      end
    end
  end

  describe "NOT_YET_IMPLEMENTED" do
    it "names only real directives, each with a default, so the launcher can warn about them" do
      expect(described_class::NOT_YET_IMPLEMENTED).to be_frozen
      expect(described_class::DEFAULTS.keys).to include(*described_class::NOT_YET_IMPLEMENTED)
      expect(Kino::DSL.directives).to include(*described_class::NOT_YET_IMPLEMENTED)
    end
  end

  describe "finding the config file" do
    it "loads kino.rb from the current directory" do
      write("kino.rb", "workers 3\n")
      configuration = load_in_dir
      expect(configuration[:workers]).to eq(3)
      expect(configuration.config_file).to eq(File.join(File.realpath(@dir), "kino.rb"))
    end

    it "falls back to config/kino.rb" do
      write("config/kino.rb", "workers 5\n")
      configuration = load_in_dir
      expect(configuration[:workers]).to eq(5)
      expect(configuration.config_file).to end_with("config/kino.rb")
    end

    it "prefers kino.rb over config/kino.rb" do
      write("kino.rb", "workers 3\n")
      write("config/kino.rb", "workers 5\n")
      expect(load_in_dir[:workers]).to eq(3)
    end

    it "loads nothing when there is no config file" do
      configuration = load_in_dir
      expect(configuration.config_file).to be_nil
      expect(configuration.to_h).to eq(described_class::DEFAULTS.merge(bind: ["127.0.0.1"]))
    end

    it "does not look for one when search_default_files is false" do
      write("kino.rb", "workers 3\n")
      configuration = load_in_dir(search_default_files: false)
      expect(configuration.config_file).to be_nil
      expect(configuration[:workers]).to eq(Kino.available_parallelism)
    end

    it "loads a named file instead of the default ones" do
      write("kino.rb", "workers 3\n")
      write("deploy/production.rb", "workers 7\n")
      configuration = load_in_dir(config_file: "deploy/production.rb")
      expect(configuration[:workers]).to eq(7)
      expect(configuration.config_file).to end_with("deploy/production.rb")
    end

    it "raises ConfigError naming a config file that does not exist" do
      expect { load_in_dir(config_file: "missing.rb") }
        .to raise_error(Kino::ConfigError, "config file not found: missing.rb")
    end

    it "returns self from #load" do
      configuration = described_class.new({}, search_default_files: false)
      expect(configuration.load).to be(configuration)
    end
  end

  describe "precedence" do
    it "takes command-line options over the file, and the file over the defaults" do
      write("kino.rb", <<~RUBY)
        workers 2
        port 4000
        rackup "from_file.ru"
      RUBY
      configuration = load_in_dir({ workers: 6, rackup: "from_cli.ru" })

      expect(configuration[:workers]).to eq(6)
      expect(configuration.rackup).to eq("from_cli.ru")
      expect(configuration[:port]).to eq(4000)
      expect(configuration[:queue_depth]).to eq(1024)
    end

    it "treats a nil option as not given" do
      write("kino.rb", "port 4000\n")
      expect(load_in_dir({ port: nil })[:port]).to eq(4000)
    end

    it "checks command-line options with the directives, at once" do
      expect { described_class.new({ workers: 0 }) }
        .to raise_error(Kino::ConfigError, "workers must be a positive Integer (got 0)")
      expect { described_class.new({ wrokers: 2 }) }
        .to raise_error(Kino::ConfigError, "unknown option :wrokers (did you mean :workers?)")
    end

    it "refuses a bad value of a directive not in effect yet as an option too" do
      expect { described_class.new({ max_workers: -1 }, search_default_files: false) }
        .to raise_error(Kino::ConfigError, "max_workers must be a positive Integer (got -1)")
    end

    it "applies options before any file is loaded" do
      expect(described_class.new({ port: 3000 }, search_default_files: false)[:port]).to eq(3000)
    end

    it "puts a host's defaults under the file and over Kino's defaults" do
      write("kino.rb", "port 4000\n")
      configuration = load_in_dir({ workers: 2 }, host_defaults: { port: 3000, bind: "0.0.0.0", workers: 5 })

      expect(configuration[:port]).to eq(4000) # the file's
      expect(configuration[:bind]).to eq(["0.0.0.0"]) # the host's: the file has no bind
      expect(configuration[:workers]).to eq(2) # the command line's
      expect(configuration.listen_addresses).to eq(["tcp://0.0.0.0:4000"])
    end

    it "takes a host's defaults when there is no file" do
      configuration = load_in_dir({}, host_defaults: { port: 3000 })
      expect(configuration.listen_addresses).to eq(["tcp://127.0.0.1:3000"])
    end

    it "checks a host's defaults with the directives" do
      expect { described_class.new({}, host_defaults: { port: "http" }) }
        .to raise_error(Kino::ConfigError, /port/)
    end
  end

  describe "#[] and #to_h" do
    subject(:configuration) { load_in_dir({ workers: 2 }) }

    it "raises KeyError for a name that is not a directive" do
      expect { configuration[:wrokers] }.to raise_error(KeyError)
    end

    it "gives every resolved value in a frozen Hash" do
      expect(configuration.to_h).to be_frozen
      expect(configuration.to_h.keys).to eq(described_class::DEFAULTS.keys)
      expect(configuration.to_h[:workers]).to eq(2)
      expect(configuration.to_h[:bind]).to be_frozen
    end
  end

  describe "#threads_for" do
    it "defaults to 1 thread per worker in :ractor mode and 3 in :threaded mode" do
      configuration = load_in_dir
      expect(configuration.threads_for(:ractor)).to eq(1)
      expect(configuration.threads_for(:threaded)).to eq(3)
      expect(configuration.threads_for("threaded")).to eq(3)
    end

    it "uses the threads directive in every mode" do
      write("kino.rb", "threads 4\n")
      configuration = load_in_dir
      expect(configuration.threads_for(:ractor)).to eq(4)
      expect(configuration.threads_for(:threaded)).to eq(4)
    end

    it "refuses :auto, which the launcher must resolve first" do
      expect { load_in_dir.threads_for(:auto) }.to raise_error(ArgumentError, /:ractor or :threaded/)
    end
  end

  describe "#listen_addresses" do
    def addresses_for(file_source = nil, cli_options = {})
      write("kino.rb", file_source) if file_source
      load_in_dir(cli_options).listen_addresses
    end

    it "listens on 127.0.0.1:9292 by default" do
      expect(addresses_for).to eq(["tcp://127.0.0.1:9292"])
    end

    it "combines a plain host with the port" do
      expect(addresses_for("bind \"0.0.0.0\"\nport 8080\n")).to eq(["tcp://0.0.0.0:8080"])
      expect(addresses_for("bind \"localhost\"\n")).to eq(["tcp://localhost:9292"])
    end

    it "keeps the port of a tcp:// address and gives the port to one without" do
      source = "port 3000\nbind \"tcp://0.0.0.0:8080\"\nbind \"tcp://127.0.0.1\"\nbind \"10.0.0.1:81\"\n"
      expect(addresses_for(source)).to eq(["tcp://0.0.0.0:8080", "tcp://127.0.0.1:3000", "tcp://10.0.0.1:81"])
    end

    it "brackets IPv6 hosts written with or without brackets" do
      source = "bind \"::1\"\nbind \"[::1]\"\nbind \"tcp://[::1]:8080\"\nbind \"tcp://::\"\n"
      expect(addresses_for(source)).to eq(["tcp://[::1]:9292", "tcp://[::1]:8080", "tcp://[::]:9292"])
    end

    it "adds one address per bind" do
      source = "bind \"127.0.0.1\"\nbind \"unix:///run/kino.sock\"\n"
      expect(addresses_for(source)).to eq(["tcp://127.0.0.1:9292", "unix:///run/kino.sock"])
    end

    it "makes a relative unix socket path absolute against the config file's directory" do
      write("deploy/kino.rb", "bind \"unix://tmp/kino.sock\"\n")
      Dir.mkdir(File.join(@dir, "elsewhere"))
      configuration = Dir.chdir(File.join(@dir, "elsewhere")) do
        described_class.new({}, config_file: "../deploy/kino.rb").load
      end
      expect(configuration.listen_addresses)
        .to eq(["unix://#{File.join(File.realpath(@dir), 'deploy/tmp/kino.sock')}"])
    end

    it "makes a relative unix socket path from the command line absolute against the working directory" do
      write("deploy/kino.rb", "bind \"127.0.0.1\"\n")
      configuration = load_in_dir({ bind: "unix://kino.sock" }, config_file: "deploy/kino.rb")
      expect(configuration.listen_addresses).to eq(["unix://#{File.join(File.realpath(@dir), 'kino.sock')}"])
    end

    it "lets command-line binds replace the file's binds" do
      source = "bind \"0.0.0.0\"\nbind \"unix:///run/kino.sock\"\n"
      expect(addresses_for(source, { bind: ["127.0.0.2", "tcp://[::1]:7000"] }))
        .to eq(["tcp://127.0.0.2:9292", "tcp://[::1]:7000"])
    end

    it "lets a command-line port replace the port only of binds without their own" do
      source = "port 4000\nbind \"0.0.0.0\"\nbind \"tcp://127.0.0.1:8080\"\n"
      expect(addresses_for(source, { port: 5000 })).to eq(["tcp://0.0.0.0:5000", "tcp://127.0.0.1:8080"])
    end

    it "lists an address once even when bound twice" do
      expect(addresses_for("bind \"0.0.0.0\"\nbind \"tcp://0.0.0.0:9292\"\n")).to eq(["tcp://0.0.0.0:9292"])
    end

    it "keeps [:bind] as written" do
      write("kino.rb", "bind \"::1\"\nbind \"unix://k.sock\"\n")
      expect(load_in_dir[:bind]).to eq(["::1", "unix://k.sock"])
    end
  end

  describe "hooks" do
    it "stores a block and a callable argument as callables" do
      write("kino.rb", <<~RUBY)
        after_boot { :booted }
        on_error ->(exception, env) { [exception, env] }
        on_worker_exit(proc { |index, error| [index, error] })
      RUBY
      configuration = load_in_dir
      expect(configuration[:after_boot].call).to eq(:booted)
      expect(configuration[:on_error].call(:boom, { "PATH_INFO" => "/" })).to eq([:boom, { "PATH_INFO" => "/" }])
      expect(configuration[:on_worker_exit].call(2, nil)).to eq([2, nil])
    end

    it "takes callables given as options" do
      handler = ->(exception, _env) { exception }
      expect(described_class.new({ on_error: handler }, search_default_files: false)[:on_error]).to be(handler)
    end

    it "leaves a block from the file shareable, so it can run in a worker ractor" do
      write("kino.rb", "greeting = \"hello\".freeze\nafter_worker_boot { greeting.upcase }\n")
      hook = load_in_dir[:after_worker_boot]
      expect(Ractor.make_shareable(hook).call).to eq("HELLO")
    end
  end

  describe "#apply_environment!" do
    it "does not touch RACK_ENV while loading" do
      write("kino.rb", "environment \"kino-spec-environment\"\n")
      before = ENV.fetch("RACK_ENV", nil)
      configuration = load_in_dir
      expect(configuration[:environment]).to eq("kino-spec-environment")
      expect(ENV.fetch("RACK_ENV", nil)).to eq(before)
    end

    it "sets RACK_ENV when it is not set" do
      write("kino.rb", "environment \"production\"\n")
      env = {}
      expect(load_in_dir.apply_environment!(env)).to be_a(described_class)
      expect(env).to eq("RACK_ENV" => "production")
    end

    it "leaves a RACK_ENV that is already set" do
      write("kino.rb", "environment \"production\"\n")
      env = { "RACK_ENV" => "staging" }
      load_in_dir.apply_environment!(env)
      expect(env).to eq("RACK_ENV" => "staging")
    end

    it "leaves RACK_ENV alone when no environment is configured" do
      env = {}
      load_in_dir.apply_environment!(env)
      expect(env).to be_empty
    end
  end
end
