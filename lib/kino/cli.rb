# frozen_string_literal: true

require "optparse"
require "kino/version"
require "kino/errors"
require "kino/configuration"

module Kino
  # The `kino` command: reads flags, builds the Configuration and hands it to
  # the launcher.
  #
  # Nothing here loads the compiled extension (Kino::Launcher does, and is
  # required only when a server is about to start or be checked), so
  # --help, --version and --init answer at once and work before the
  # extension is built.
  class CLI
    BANNER = <<~TEXT.freeze
      Usage: kino [options] [rackup file]

      Serves the Rack application built by the rackup file (default: #{Configuration::DEFAULTS[:rackup]}),
      with settings from a config file (default: #{Configuration::DEFAULT_CONFIG_FILES.join(' or ')} when
      present). Flags override the config file.

    TEXT
    TEMPLATE = File.expand_path("templates/kino.rb", __dir__).freeze
    INIT_TARGET = "kino.rb"

    # Runs the command for +argv+ and returns the process exit status.
    # Problems the user can fix (a bad flag, a bad config) are printed to
    # +stderr+ as one "kino: ..." line, without a backtrace.
    def self.start(argv, stdout: $stdout, stderr: $stderr)
      new(stdout: stdout, stderr: stderr).start(argv)
    end

    def initialize(stdout:, stderr:)
      @stdout = stdout
      @stderr = stderr
    end

    def start(argv)
      @argv = argv.dup.freeze
      request = parse(argv)
      case request[:action]
      when :help then help(request[:parser])
      when :version then version
      when :init then init
      when :check then launcher(configuration(request)).check
      else launcher(configuration(request)).run
      end
    rescue OptionParser::ParseError => e
      @stderr.puts "kino: #{describe_parse_error(e)}"
      1
    rescue Kino::Error => e
      @stderr.puts "kino: #{e.message}"
      1
    end

    private

    # OptionParser puts its did-you-mean on lines of their own
    # ("Did you mean?  workers"); one line in the DSL's style reads better.
    def describe_parse_error(error)
      first_line, *rest = error.message.lines.map(&:strip)
      candidates = rest.join(" ").delete_prefix("Did you mean?").split
      return first_line if candidates.empty?

      flags = candidates.map { |name| name.length == 1 ? "-#{name}" : "--#{name}" }
      "#{first_line} (did you mean #{flags.join(' or ')}?)"
    end

    # Returns { action:, parser:, options:, config_file: }. The last of
    # --help, --version, --init, --check given decides the action.
    def parse(argv)
      request = { action: :run, options: {}, config_file: nil }
      options = request[:options]
      # The defaults the help gives come from the table, so they cannot drift.
      defaults = Configuration::DEFAULTS
      threads = Configuration::THREADS_PER_WORKER
      config_files = Configuration::DEFAULT_CONFIG_FILES.join(", then ")
      parser = OptionParser.new do |opts|
        opts.banner = BANNER
        opts.program_name = "kino"
        opts.separator "Options:"
        opts.on("-C", "--config FILE", "Config file (default: #{config_files})") do |file|
          request[:config_file] = file
        end
        opts.on("-b", "--bind URI", "Address to listen on: HOST, tcp://HOST:PORT or unix://PATH;",
                "repeat for several (replaces the config file's binds)") do |address|
          (options[:bind] ||= []) << address
        end
        opts.on("-p", "--port PORT", Integer,
                "Port for binds without their own (default: #{defaults[:port]})") do |port|
          options[:port] = port
        end
        opts.on("-w", "--workers N", Integer, "Workers (default: number of cores)") do |count|
          options[:workers] = count
        end
        opts.on("-t", "--threads N", Integer, "Threads per worker (default: #{threads[:ractor]} in ractor mode, " \
                                              "#{threads[:threaded]} in threaded)") do |count|
          options[:threads] = count
        end
        opts.on("-m", "--mode MODE", "auto, ractor or threaded (default: #{defaults[:mode]})") do |mode|
          options[:mode] = mode
        end
        opts.on("-e", "--environment ENV", "RACK_ENV for the app, unless RACK_ENV is already set") do |name|
          options[:environment] = name
        end
        opts.on("--init", "Write a commented sample #{INIT_TARGET} into the current directory") do
          request[:action] = :init
        end
        opts.on("--check", "Say whether mode auto runs the app in ractors, and if not, why:",
                "what stands in the way, what it would freeze; exit 0 if so, 1 if not") do
          request[:action] = :check
        end
        opts.on("-v", "--version", "Print the version") { request[:action] = :version }
        opts.on("-h", "--help", "Print this help") { request[:action] = :help }
      end
      arguments = parser.parse(argv)
      raise Kino::Error, "one rackup file at most (got #{arguments.join(' ')})" if arguments.size > 1

      options[:rackup] = arguments.first
      request.merge(parser: parser)
    end

    def help(parser)
      @stdout.puts parser.help
      0
    end

    def version
      @stdout.puts "kino #{Kino::VERSION}"
      @stdout.puts RUBY_DESCRIPTION
      0
    end

    # Copies the sample config. Opening with EXCL refuses an existing file
    # atomically: a config someone wrote is never overwritten.
    def init
      File.open(INIT_TARGET, File::WRONLY | File::CREAT | File::EXCL) do |file|
        file.write(File.read(TEMPLATE))
      end
      @stdout.puts "kino: wrote #{INIT_TARGET}; every directive in it is commented out with its default"
      0
    rescue Errno::EEXIST
      @stderr.puts "kino: #{INIT_TARGET} already exists; not overwriting it"
      1
    end

    def configuration(request)
      Configuration.new(request[:options], config_file: request[:config_file]).load
    end

    def launcher(configuration)
      require "kino/launcher"
      Kino::Launcher.new(configuration, stdout: @stdout, stderr: @stderr, restart_command: restart_command)
    end

    # What SIGUSR2 runs again (a process group's zero-downtime restart):
    # this script, by its absolute path, with the same arguments.
    def restart_command
      [File.expand_path($PROGRAM_NAME), *@argv]
    end
  end
end
