# frozen_string_literal: true

# The gem as a user gets it: built from kino.gemspec, installed into an
# empty GEM_HOME (rack comes from RubyGems, the extension compiles at
# install time), then the `kino` that install put in GEM_HOME/bin serves
# the hello example it ships.
#
#   rake gem:build   # pkg/kino-<version>.gem
#   rake gem:smoke   # build, install into tmp/gem-smoke, serve, stop
#
# Nothing of the development setup may leak in: no Bundler (bundle exec
# sets RUBYOPT=-rbundler/setup), no RUBYLIB, no gem of the system's own
# GEM_PATH, no file of this checkout on the load path. The install and the
# server run with an environment built from scratch (KinoGem.clean_env).

require "net/http"
require "rbconfig"
require "rubygems/package"

# Building, installing and serving the gem, for the tasks below.
module KinoGem
  extend Rake::DSL

  ROOT = File.expand_path("..", __dir__)
  SMOKE_DIR = File.join(ROOT, "tmp", "gem-smoke")
  JOBS = ENV.fetch("KINO_JOBS", "2")
  BOOT_TIMEOUT = 60
  STOP_TIMEOUT = 30
  # Passed through, so an install behind a proxy still reaches RubyGems.
  PROXY_VARIABLES = %w[http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY SSL_CERT_FILE].freeze

  def self.gemspec
    Gem::Specification.load(File.join(ROOT, "kino.gemspec"))
  end

  def self.gem_path
    File.join(ROOT, "pkg", "#{gemspec.full_name}.gem")
  end

  def self.build
    mkdir_p File.dirname(gem_path)
    sh clean_env(home: File.join(ROOT, "tmp")), RbConfig.ruby, gem_command, "build", "kino.gemspec",
       "--output", gem_path, chdir: ROOT, unsetenv_others: true
    gem_path
  end

  def self.gem_command
    File.join(RbConfig::CONFIG["bindir"], "gem")
  end

  # PATH for the compiler and make, a HOME of our own (RubyGems writes
  # ~/.local/share/gem and its cache there), GEM_HOME and GEM_PATH the one
  # empty directory: this Ruby's default gems stay visible, nothing else.
  def self.clean_env(home:, gem_home: nil)
    env = { "PATH" => ENV.fetch("PATH"), "HOME" => home, "LANG" => "C.UTF-8", "MAKEFLAGS" => "-j#{JOBS}" }
    env.merge!("GEM_HOME" => gem_home, "GEM_PATH" => gem_home) if gem_home
    PROXY_VARIABLES.each { |name| env[name] = ENV[name] if ENV.key?(name) }
    env
  end

  # What the .gem holds must be sources, Ruby, signatures and docs only.
  def self.check_contents(path)
    files = Gem::Package.new(path).contents
    wrong = files.grep(%r{\A(?:tmp|spec|pkg|vendor|bench)/|/(?:tmp|log|vendor)/|\.(?:so|o|bundle|gem|lock)\z|
                          \Aext/kino/(?:test|fuzz)/|\Aexamples/(?!hello/)}x)
    raise "#{File.basename(path)} ships what it must not: #{wrong.join(', ')}" unless wrong.empty?

    puts "#{File.basename(path)}: #{files.size} files, none from tmp/, spec/, tests or builds"
  end

  def self.install(path, gem_home)
    env = clean_env(home: File.dirname(gem_home), gem_home: gem_home)
    sh env, RbConfig.ruby, gem_command, "install", "--no-document", "--bindir", File.join(gem_home, "bin"),
       path, unsetenv_others: true
    gem_dir = Dir[File.join(gem_home, "gems", File.basename(path, ".gem"))].first
    raise "#{path} did not install into #{gem_home}" unless gem_dir

    gem_dir
  end

  # The extension Ruby loads must be the one the install compiled.
  def self.check_extension(gem_home)
    env = clean_env(home: File.dirname(gem_home), gem_home: gem_home)
    loaded = IO.popen(env, [RbConfig.ruby, "-e", 'require "kino"; puts $LOADED_FEATURES.grep(%r{/kino/kino\.so\z})'],
                      unsetenv_others: true, chdir: gem_home, &:read).strip
    raise "require \"kino\" loaded no kino.so from #{gem_home} (got #{loaded.inspect})" unless
      loaded.start_with?("#{gem_home}/")

    puts "require \"kino\" loads #{loaded}"
  end

  # `kino -p 0` in the installed examples/hello: its kino.rb and config.ru,
  # on a port the kernel picks. GET / must be the example's greeting and
  # TERM must stop the server with exit status 0.
  def self.serve_hello(gem_home, gem_dir)
    env = clean_env(home: File.dirname(gem_home), gem_home: gem_home)
    out_r, out_w = IO.pipe
    pid = Process.spawn(env, File.join(gem_home, "bin", "kino"), "-p", "0",
                        chdir: File.join(gem_dir, "examples", "hello"), unsetenv_others: true,
                        in: File::NULL, out: out_w, err: out_w)
    out_w.close
    output = +""
    port = wait_for_port(out_r, output, pid)
    check_hello(port, output)
    Process.kill("TERM", pid)
    status = wait_for_exit(pid, output)
    output << out_r.read
    raise "kino exited with #{status.inspect} after TERM\n#{output}" unless status&.exitstatus&.zero?

    puts output.gsub(/^/, "  | ")
    puts "kino from #{gem_home}/bin served examples/hello on port #{port} and stopped with exit 0"
  ensure
    stop_at_once(pid) if pid && !status
    out_r&.close
  end

  # A smoke run that failed leaves no server behind.
  def self.stop_at_once(pid)
    Process.kill("KILL", pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def self.wait_for_port(out_r, output, pid)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + BOOT_TIMEOUT
    until (port = output[%r{^\* Listening on tcp://[^\s]*:(\d+)$}, 1])
      remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raise "kino did not say where it listens within #{BOOT_TIMEOUT}s\n#{output}" unless remaining.positive?
      raise "kino exited before listening\n#{output}" if Process.waitpid(pid, Process::WNOHANG)

      next unless out_r.wait_readable(remaining)

      begin
        output << out_r.readpartial(4096)
      rescue EOFError
        raise "kino closed its output before listening\n#{output}"
      end
    end
    Integer(port)
  end

  def self.check_hello(port, output)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 5, read_timeout: 10) do |http|
      { "/" => "Hello, world!\n", "/?name=gem" => "Hello, gem!\n" }.each do |path, body|
        response = http.get(path)
        next if response.code == "200" && response.body == body

        raise "GET #{path}: #{response.code} #{response.body.inspect}, wanted 200 #{body.inspect}\n#{output}"
      end
    end
  end

  def self.wait_for_exit(pid, output)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + STOP_TIMEOUT
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      _, status = Process.waitpid2(pid, Process::WNOHANG)
      return status if status

      sleep 0.05
    end
    raise "kino did not exit within #{STOP_TIMEOUT}s of TERM\n#{output}"
  end
end

namespace :gem do
  desc "Build pkg/kino-<version>.gem from kino.gemspec"
  task :build do
    KinoGem.check_contents(KinoGem.build)
  end

  desc "Install the gem into an empty GEM_HOME (tmp/gem-smoke) and serve examples/hello with its kino"
  task smoke: :build do
    rm_rf KinoGem::SMOKE_DIR
    gem_home = File.join(KinoGem::SMOKE_DIR, "gem_home")
    mkdir_p gem_home
    gem_dir = KinoGem.install(KinoGem.gem_path, gem_home)
    KinoGem.check_extension(gem_home)
    KinoGem.serve_hello(gem_home, gem_dir)
  end
end
