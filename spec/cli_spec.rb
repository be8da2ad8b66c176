# frozen_string_literal: true

require "open3"
require "rbconfig"
require "stringio"
require "kino/cli"

RSpec.describe Kino::CLI do
  def root
    File.expand_path("..", __dir__)
  end

  def executable
    File.join(root, "exe", "kino")
  end

  def template
    File.join(root, "lib", "kino", "templates", "kino.rb")
  end

  include_context "in a fresh directory"

  # Runs exe/kino with +arguments+ in a fresh Ruby, from +chdir+.
  def kino(*arguments, chdir: @dir, ruby_options: [], env: {})
    Open3.capture3(env, RbConfig.ruby, *ruby_options, executable, *arguments, chdir: chdir)
  end

  describe "exe/kino" do
    it "is executable" do
      expect(File.executable?(executable)).to be(true)
    end

    it "prints the flags for --help and exits 0" do
      stdout, stderr, status = kino("--help")
      expect(status.exitstatus).to eq(0)
      expect(stderr).to eq("")
      expect(stdout).to start_with("Usage: kino [options] [rackup file]")
      %w[--config --bind --port --workers --threads --mode --environment --init --check --version --help].each do |flag|
        expect(stdout).to include(flag)
      end
    end

    it "prints its version and Ruby's for --version and exits 0" do
      stdout, _stderr, status = kino("--version")
      expect(status.exitstatus).to eq(0)
      expect(stdout).to eq("kino #{Kino::VERSION}\n#{RUBY_DESCRIPTION}\n")
    end

    it "writes the sample kino.rb for --init" do
      stdout, stderr, status = kino("--init")
      expect([status.exitstatus, stderr]).to eq([0, ""])
      expect(stdout).to include("wrote kino.rb")
      expect(File.read(File.join(@dir, "kino.rb"))).to eq(File.read(template))
    end

    it "refuses --init when kino.rb exists, and leaves it alone" do
      write("kino.rb", "workers 2\n")
      _stdout, stderr, status = kino("--init")
      expect(status.exitstatus).to eq(1)
      expect(stderr).to eq("kino: kino.rb already exists; not overwriting it\n")
      expect(File.read(File.join(@dir, "kino.rb"))).to eq("workers 2\n")
    end

    # What is refused: the files the directory holds, the arguments, and
    # the one line on stderr.
    {
      "a bad value in the config file, with file and line and no backtrace" =>
        [{ "kino.rb" => "port 3000\nworkers \"two\"\n" }, [],
         "kino: kino.rb:2: workers must be a positive Integer (got \"two\")\n"],
      "an unknown directive in a named config file" =>
        [{ "production.rb" => "\nwrokers 4\n" }, ["-C", "production.rb"],
         "kino: production.rb:2: unknown directive 'wrokers' (did you mean 'workers'?)\n"],
      "a flag value that is not a number" => [{}, ["-w", "abc"], "kino: invalid argument: -w abc\n"],
      "a flag value the directive refuses" =>
        [{}, ["--mode", "fast"], "kino: mode must be one of :auto, :ractor, :threaded (got \"fast\")\n"],
      "a bad config under --check, before the launcher" =>
        [{ "kino.rb" => "threads 0\n" }, ["--check"], "kino: kino.rb:1: threads must be a positive Integer (got 0)\n"]
    }.each do |what, (files, arguments, message)|
      it "reports #{what}, and exits 1" do
        files.each { |name, source| write(name, source) }
        stdout, stderr, status = kino(*arguments)
        expect([status.exitstatus, stdout, stderr]).to eq([1, "", message])
      end
    end

    it "loads no native code and no launcher for --help, --version and --init" do
      stdout, stderr, status = Open3.capture3(
        RbConfig.ruby, "-I", File.join(root, "lib"), "-e",
        'require "kino/cli"; puts $LOADED_FEATURES.grep(%r{/kino/|\.so\z})'
      )
      expect([status.exitstatus, stderr]).to eq([0, ""])
      # Only this checkout's files: a Ruby or gems installed under a path
      # that says "kino" (/var/cache/kino/...) must not count.
      own = File.join(root, "lib", "kino", "")
      kino_files = stdout.lines.map(&:chomp).select { |path| path.start_with?(own) }.map { |path| File.basename(path) }
      expect(kino_files).to match_array(%w[cli.rb version.rb errors.rb configuration.rb dsl.rb listen_address.rb
                                           directive_checks.rb available_parallelism.rb])
    end

    # A stand-in launcher, found first on the load path, shows what the CLI
    # hands over without depending on the real one.
    context "with a stand-in launcher" do
      before do
        write("stand_in/kino/launcher.rb", <<~RUBY)
          module Kino
            class Launcher
              def initialize(configuration, stdout:, stderr:, restart_command: nil)
                @configuration = configuration
                @stdout = stdout
                @stderr = stderr
                @restart_command = restart_command
              end

              def run
                @stdout.puts "run workers=\#{@configuration[:workers]} rackup=\#{@configuration.rackup} " \\
                             "mode=\#{@configuration[:mode]} listen=\#{@configuration.listen_addresses.join(",")}"
                @stderr.puts "restart=\#{@restart_command.join(" ")}" if ENV["KINO_SPEC_RESTART"]
                7
              end

              def check
                @stdout.puts "check rackup=\#{@configuration.rackup}"
                3
              end
            end
          end
        RUBY
      end

      # Without RUBYOPT, Bundler cannot put the checkout's lib (and a real
      # launcher in it) ahead of the stand-in.
      def kino_with_stand_in(*arguments)
        kino(*arguments, ruby_options: ["-I", File.join(@dir, "stand_in"), "-I", File.join(root, "lib")],
                         env: { "RUBYOPT" => nil })
      end

      it "runs the launcher with flags over the config file, and exits with its status" do
        write("kino.rb", "workers 2\nmode :threaded\nport 4000\nbind \"0.0.0.0\"\n")
        stdout, stderr, status = kino_with_stand_in("-w", "5", "-p", "5000", "app.ru")
        expect(stderr).to eq("")
        expect(status.exitstatus).to eq(7)
        expect(stdout).to eq("run workers=5 rackup=app.ru mode=threaded listen=tcp://0.0.0.0:5000\n")
      end

      it "gives the launcher its own command line, for SIGUSR2 to start again" do
        load_path = ["-I", File.join(@dir, "stand_in"), "-I", File.join(root, "lib")]
        stdout, stderr, = kino(*%w[-w 5 app.ru], ruby_options: load_path,
                                                 env: { "RUBYOPT" => nil, "KINO_SPEC_RESTART" => "1" })
        expect(stdout).to start_with("run workers=5")
        expect(stderr).to eq("restart=#{File.join(root, 'exe/kino')} -w 5 app.ru\n")
      end

      it "replaces the file's binds with every --bind" do
        write("kino.rb", "bind \"0.0.0.0\"\n")
        stdout, _stderr, _status = kino_with_stand_in("-b", "127.0.0.2", "--bind", "tcp://[::1]:7000")
        expect(stdout).to include("listen=tcp://127.0.0.2:9292,tcp://[::1]:7000\n")
      end

      it "asks the launcher to check for --check" do
        stdout, _stderr, status = kino_with_stand_in("--check", "other.ru")
        expect(status.exitstatus).to eq(3)
        expect(stdout).to eq("check rackup=other.ru\n")
      end
    end
  end

  describe ".start" do
    let(:stdout) { StringIO.new }
    let(:stderr) { StringIO.new }

    def start(*argv)
      Dir.chdir(@dir) { described_class.start(argv, stdout: stdout, stderr: stderr) }
    end

    it "prints the version" do
      expect(start("-v")).to eq(0)
      expect(stdout.string).to eq("kino #{Kino::VERSION}\n#{RUBY_DESCRIPTION}\n")
    end

    it "prints help" do
      expect(start("-h")).to eq(0)
      expect(stdout.string).to include("-C, --config FILE")
      expect(stderr.string).to eq("")
    end

    it "writes kino.rb into the current directory for --init" do
      expect(start("--init")).to eq(0)
      expect(File.read(File.join(@dir, "kino.rb"))).to eq(File.read(template))
    end

    it "leaves argv as it was" do
      argv = ["-w", "2", "--version"]
      Dir.chdir(@dir) { described_class.start(argv, stdout: stdout, stderr: stderr) }
      expect(argv).to eq(["-w", "2", "--version"])
    end

    {
      "an unknown flag" => [["--wrokers", "2"], "kino: invalid option: --wrokers (did you mean --workers?)\n"],
      "an unknown flag with none close to it" => [["--preload"], "kino: invalid option: --preload\n"],
      "a missing flag value" => [["-p"], "kino: missing argument: -p\n"],
      "a flag value a directive refuses" => [["-w", "0"], "kino: workers must be a positive Integer (got 0)\n"],
      "a bind it cannot listen on" =>
        [["-b", "ssl://0.0.0.0:443"], "kino: bind cannot listen on \"ssl://0.0.0.0:443\": Kino listens on tcp:// " \
                                      "and unix:// (HTTPS comes from the tls directive)\n"],
      "a config file that does not exist" => [["-C", "missing.rb"], "kino: config file not found: missing.rb\n"],
      "more than one rackup file" => [["a.ru", "b.ru"], "kino: one rackup file at most (got a.ru b.ru)\n"]
    }.each do |what, (argv, message)|
      it "returns 1 and one line on stderr for #{what}" do
        expect(start(*argv)).to eq(1)
        expect(stderr.string).to eq(message)
      end
    end

    it "returns 1 with file and line for a syntax error in the config file" do
      write("kino.rb", "workers 2\nthreads(\n")
      expect(start).to eq(1)
      expect(stderr.string).to start_with("kino: kino.rb:2: syntax error")
      expect(stdout.string).to eq("")
    end
  end
end
