# frozen_string_literal: true

require "rack"
require "kino/rack_handler"
require "rackup/handler/kino"

# Kino::RackHandler through the real `rackup` executable (rackup >= 2):
# `rackup -s kino` finds Rackup::Handler::Kino, and Kino starts as `kino`
# does. The Rails side (`bin/rails server -u kino`) is in
# rails_example_spec.rb.
RSpec.describe Kino::RackHandler do
  include_context "in a fresh directory"

  let(:hello_ru) { File.join(ServerHelper::FIXTURES, "hello.ru") }

  # The gem's own executable, run by this Ruby with this checkout's lib.
  def rackup_command
    [RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), Gem.bin_path("rackup", "rackup")]
  end

  def rackup(*args, wait: true)
    spawn_kino(*args, command: rackup_command, chdir: @dir, wait: wait)
  end

  def hello(port)
    response = http_get("/", port: port)
    [response.code, response.body]
  end

  it "is what Rackup::Handler.get(:kino) finds" do
    expect(Rackup::Handler.get(:kino)).to be(Rackup::Handler::Kino)
    expect(Rackup::Handler::Kino.singleton_class).to include(described_class)
  end

  it "invents no Rack::Handler on Rack 3, where only Rackup::Handler exists" do
    script = 'require "rack"; require "rack/handler/kino"; print defined?(Rack::Handler).inspect'
    output = IO.popen([RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), "-e", script], &:read)
    expect(output).to eq("nil")
  end

  %w[TERM INT].each do |signal|
    it "serves a rackup file with `rackup -s kino -p 0` and stops gracefully on SIG#{signal}" do
      kino = rackup("-s", "kino", "-o", "127.0.0.1", "-p", "0", hello_ru)
      port = kino.listening_port
      expect(kino.stdout).to match(/^Kino #{Regexp.escape(Kino::VERSION)} \(ruby /)
      expect(kino.stdout).to include("* Listening on tcp://127.0.0.1:#{port}\n")
      expect(hello(port)).to eq(["200", "Hello from Kino\n"])

      kino.signal(signal)
      expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
      expect(kino.stdout).to include("- Gracefully stopping (SIG#{signal})", "- Goodbye!")
    end
  end

  it "finishes the request in flight on SIGTERM before rackup exits" do
    started = File.join(@dir, "started")
    kino = spawn_kino("-s", "kino", "-o", "127.0.0.1", "-p", "0", "-O", "Mode=threaded",
                      File.join(ServerHelper::FIXTURES, "slow.ru"),
                      command: rackup_command, chdir: @dir, env: { "KINO_SPEC_STARTED_FILE" => started })
    port = kino.listening_port
    request = Thread.new do
      response = http_get("/slow", port: port)
      [response.code, response.body]
    end
    wait_until(message: -> { "/slow never started\nstdout:\n#{kino.stdout}\nstderr:\n#{kino.stderr}" }) do
      File.exist?(started)
    end
    kino.signal("TERM")

    expect(request.value).to eq(["200", "slow done\n"])
    expect(kino.wait(timeout: 10)&.exitstatus).to eq(0)
    expect(kino.stdout).to include("- Gracefully stopping (SIGTERM)", "- Goodbye!")
  ensure
    request&.join(ServerHelper::IO_TIMEOUT)
  end

  it "takes -O Mode=, Workers= and Threads=" do
    kino = rackup("-s", "kino", "-o", "127.0.0.1", "-p", "0",
                  "-O", "Mode=threaded", "-O", "Workers=2", "-O", "Threads=4", hello_ru)
    expect(kino.stdout).to include("* Mode: threaded, 2 workers x 4 threads")
    expect(hello(kino.listening_port)).to eq(["200", "Hello from Kino\n"])
  end

  it "takes Puma's -O Threads=MIN:MAX, running MAX threads" do
    kino = rackup("-s", "kino", "-o", "127.0.0.1", "-p", "0", "-O", "Mode=threaded", "-O", "Workers=1",
                  "-O", "Threads=1:5", hello_ru)
    expect(kino.stdout).to include("* Mode: threaded, 1 workers x 5 threads")
  end

  it "lists its options in `rackup -s kino --help`" do
    kino = rackup("-s", "kino", "--help", wait: false)
    expect(kino.wait(timeout: 20)&.exitstatus).to eq(0)
    help = kino.stdout
    expect(help).to include("Server-specific options for Rackup::Handler::Kino:")
    %w[Threads=N Workers=N Mode=MODE Config=FILE].each do |option|
      expect(help).to match(/^  -O #{Regexp.escape(option)} +\S/)
    end
    expect(help).to include("auto, ractor or threaded (default: auto)")
  end

  describe "config/kino.rb" do
    it "is read, and `-p` wins over its port" do
      taken = TCPServer.new("127.0.0.1", 0) # the file's port: serving there would fail to bind
      write("config/kino.rb", <<~RUBY)
        port #{taken.addr[1]}
        mode :threaded
        workers 1
        threads 2
      RUBY
      kino = rackup("-s", "kino", "-o", "127.0.0.1", "-p", "0", hello_ru)
      port = kino.listening_port
      expect(port).not_to eq(taken.addr[1])
      expect(kino.stdout).to include("* Mode: threaded, 1 workers x 2 threads")
      expect(hello(port)).to eq(["200", "Hello from Kino\n"])
    ensure
      taken&.close
    end

    it "gives the port and bind when rackup has only its defaults (no -p, no -o)" do
      port = free_port
      write("config/kino.rb", <<~RUBY)
        bind "127.0.0.1"
        port #{port}
        mode :threaded
        workers 1
      RUBY
      kino = rackup("-s", "kino", hello_ru)
      expect(kino.stdout).to include("* Listening on tcp://127.0.0.1:#{port}\n")
      expect(hello(port)).to eq(["200", "Hello from Kino\n"])
    end

    it "is replaced by the file -O Config= names" do
      write("config/kino.rb", "workers 3\n")
      write("deploy/web.rb", "mode :threaded\nworkers 1\nthreads 1\n")
      kino = rackup("-s", "kino", "-o", "127.0.0.1", "-p", "0", "-O", "Config=deploy/web.rb", hello_ru)
      expect(kino.stdout).to include("* Mode: threaded, 1 workers x 1 threads")
    end
  end

  it "ends rackup with status 1 and one line for a bad option" do
    kino = rackup("-s", "kino", "-p", "0", "-O", "Workers=none", hello_ru, wait: false)
    expect(kino.wait(timeout: 20)&.exitstatus).to eq(1)
    expect(kino.stderr).to include("kino: workers must be a positive Integer (got \"none\")")
    expect(kino.stdout).not_to include("Listening on")
  end

  describe "#configuration_for, as `rails server` calls it" do
    # Rails passes every option, and names the ones the user typed.
    def rails_options(**typed)
      defaults = { Host: "localhost", Port: 3000, environment: "development" }
      defaults.merge(typed, user_supplied_options: typed.keys)
    end

    it "lets the config file's port win over Rails' default port" do
      write("config/kino.rb", "port 4567\n")
      configuration = Dir.chdir(@dir) { Rackup::Handler::Kino.configuration_for(rails_options) }
      expect(configuration.listen_addresses).to eq(["tcp://localhost:4567"])
    end

    it "lets `rails s -p` and `-b` win over the config file" do
      write("config/kino.rb", "port 4567\nbind \"0.0.0.0\"\n")
      configuration = Dir.chdir(@dir) do
        Rackup::Handler::Kino.configuration_for(rails_options(Port: 5000, Host: "127.0.0.1"))
      end
      expect(configuration.listen_addresses).to eq(["tcp://127.0.0.1:5000"])
    end

    it "uses Rails' defaults when there is no config file" do
      configuration = Dir.chdir(@dir) { Rackup::Handler::Kino.configuration_for(rails_options) }
      expect(configuration.listen_addresses).to eq(["tcp://localhost:3000"])
    end
  end
end
