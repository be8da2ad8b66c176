# frozen_string_literal: true

require "open3"
require "rbconfig"
require "socket"
require "stringio"
require "kino"

# A shareable app, for embedded servers in both modes.
module PidfileApp
  def self.call(_env)
    [200, { "content-type" => "text/plain" }, ["pidfile app\n"]]
  end
end

# Kino::Pidfile: the file claimed exclusively, by `kino` and by an
# embedded Kino::Server, through real processes.
RSpec.describe Kino::Pidfile do
  include_context "in a fresh directory"

  let(:path) { File.join(@dir, "kino.pid") }
  let(:port) { free_port }

  after do
    (@sleepers || []).each do |pid|
      Process.kill("KILL", pid)
      Process.wait(pid)
    rescue SystemCallError
      nil
    end
  end

  # The pid of a process that has exited and been reaped.
  def dead_pid
    pid = Process.spawn(RbConfig.ruby, "-e", "exit")
    Process.wait(pid)
    pid
  end

  # A live process that is not this one, until the example ends.
  def live_pid
    pid = Process.spawn("sleep", "60")
    (@sleepers ||= []) << pid
    pid
  end

  # `kino` serving hello.ru with +path+ as its pidfile (set in a kino.rb).
  def spawn_with_pidfile(mode, port: self.port, wait: true)
    config = write("pidfile.rb", "pidfile #{path.inspect}\n")
    spawn_kino("-C", config, "-m", mode.to_s, "-w", "1", "-t", "1", "spec/fixtures/hello.ru",
               port: port, wait: wait)
  end

  # The exit status and stderr of a `kino` that should not have started.
  def refusal(kino)
    status = kino.wait(timeout: WaitHelper::BOOT_TIMEOUT)
    expect(kino.stdout).not_to include("Listening")
    [status&.exitstatus, kino.stderr]
  end

  def stop_cleanly(kino)
    kino.signal("TERM")
    expect(kino.wait(timeout: 10)&.exitstatus).to eq(0), -> { "stdout:\n#{kino.stdout}\nstderr:\n#{kino.stderr}" }
  end

  # Runs +script+ in a new Ruby with lib on the load path; the pidfile path
  # is ARGV[0].
  def run_ruby(script)
    Open3.capture3(RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), "-e", script, path)
  end

  def refused_as_running(holder)
    "pidfile #{path} belongs to process #{holder}, which is running: is Kino already running? " \
      "Stop it first (or, if that process is not Kino, remove #{path})"
  end

  in_each_mode do |mode|
    it "lets a second `kino` with the same pidfile refuse to start, and the first keep serving" do
      first = spawn_with_pidfile(mode)
      expect(File.read(path)).to eq("#{first.pid}\n")
      expect(File.stat(path).mode & 0o777).to eq(Kino::Pidfile::MODE)

      second = spawn_with_pidfile(mode, port: free_port, wait: false)
      expect(refusal(second)).to eq([1, "#{said_by(pid: second.pid)}#{refused_as_running(first.pid)}\n"])

      expect(File.read(path)).to eq("#{first.pid}\n")
      expect(http_get("/", port: port).body).to eq("Hello from Kino\n")
      stop_cleanly(first)
      expect(File.exist?(path)).to be(false)
    end

    it "replaces a stale pidfile whose process is gone, says so, and removes it on TERM" do
      stale = dead_pid
      File.write(path, "#{stale}\n")
      kino = spawn_with_pidfile(mode)
      expect(File.read(path)).to eq("#{kino.pid}\n")
      expect(kino.stderr)
        .to include("#{said_by(pid: kino.pid)}replaced stale pidfile #{path} (pid #{stale} is not running)\n")

      stop_cleanly(kino)
      expect(File.exist?(path)).to be(false)
    end

    it "refuses a symlink at the path, naming it, and leaves its target untouched" do
      target = write("target.txt", "precious\n")
      File.symlink(target, path)
      kino = spawn_with_pidfile(mode, wait: false)
      expect(refusal(kino)).to eq([1, "#{said_by(pid: kino.pid)}pidfile #{path} is a symbolic link " \
                                      "(to #{target}); Kino does not " \
                                      "write through one: remove it, or name a plain file\n"])
      expect(File.read(target)).to eq("precious\n")
      expect(File.readlink(path)).to eq(target)
    end

    it "leaves the file on TERM once it no longer holds its pid" do
      kino = spawn_with_pidfile(mode)
      File.write(path, "#{live_pid}\n") # rewritten by someone else
      rewritten = File.read(path)
      stop_cleanly(kino)
      expect(File.read(path)).to eq(rewritten)
    end

    it "is written by an embedded Kino::Server, mode 0644, and removed by its shutdown" do
      embedded = serve(PidfileApp, pidfile: path)
      expect(File.read(path)).to eq("#{Process.pid}\n")
      expect(File.stat(path).mode & 0o777).to eq(0o644)
      expect(http_get("/").body).to eq("pidfile app\n")

      embedded.shutdown
      expect(File.exist?(path)).to be(false)
    end
  end

  it "keeps its file across the forked ractor check of mode :auto" do
    kino = spawn_with_pidfile(:auto)
    expect(File.read(path)).to eq("#{kino.pid}\n")
    stop_cleanly(kino)
    expect(File.exist?(path)).to be(false)
  end

  describe "an embedded Kino::Server" do
    def embedded(**options)
      Kino::Server.new(PidfileApp, log: StringIO.new, mode: :threaded, bind: "127.0.0.1", port: port,
                                   pidfile: path, **options)
    end

    it "does not start, nor bind, while a live process holds the file" do
      holder = live_pid
      File.write(path, "#{holder}\n")
      expect { embedded.start }.to raise_error(Kino::Pidfile::ClaimError, refused_as_running(holder))
      expect(File.read(path)).to eq("#{holder}\n")
      TCPServer.new("127.0.0.1", port).close # the port was never taken
    end

    # As root pid 1 answers kill(0); otherwise it answers EPERM, which
    # counts as alive all the same.
    it "counts a process it may not signal as alive" do
      File.write(path, "1\n")
      expect { embedded.start }.to raise_error(Kino::Pidfile::ClaimError, refused_as_running(1))
      expect(File.read(path)).to eq("1\n")
    end

    it "gives the file back when it cannot start after claiming it" do
      blocker = TCPServer.new("127.0.0.1", port)
      expect { embedded.start }.to raise_error(Kino::Error, /cannot listen on/)
      expect(File.exist?(path)).to be(false)
    ensure
      blocker&.close
    end
  end

  describe ".claim" do
    ["", "garbage\n", "0\n", "-1\n", "99999999999999999999\n"].each do |content|
      it "replaces a file holding #{content.inspect}" do
        File.write(path, content)
        pidfile = described_class.claim(path)
        expect([File.read(path), pidfile.replaced]).to eq(["#{Process.pid}\n", "it held no pid"])
        pidfile.release
        expect(File.exist?(path)).to be(false)
      end
    end

    # A restarted container gives the server the pid it had before.
    it "replaces a file holding its own pid, which no other process can own" do
      File.write(path, "#{Process.pid}\n")
      pidfile = described_class.claim(path)
      expect(pidfile.replaced).to eq("it held this process's pid, from before it started")
      pidfile.release
    end

    it "never creates the target of a dangling symlink" do
      target = File.join(@dir, "absent")
      File.symlink(target, path)
      expect { described_class.claim(path) }
        .to raise_error(Kino::Pidfile::ClaimError, /\Apidfile #{Regexp.escape(path)} is a symbolic link/)
      expect(File.exist?(target)).to be(false)
    end

    {
      "directory" => ->(path) { Dir.mkdir(path) },
      "fifo" => ->(path) { File.mkfifo(path) },
      "socket" => ->(path) { UNIXServer.new(path) }
    }.each do |kind, make|
      it "refuses a #{kind} at the path" do
        made = make.call(path)
        expect { described_class.claim(path) }
          .to raise_error(Kino::Pidfile::ClaimError,
                          "pidfile #{path} is not a regular file (#{kind}); remove it, or name a plain file")
      ensure
        made.close if made.respond_to?(:close)
      end
    end

    # Whoever holds the lock on a stale file is replacing it; a claimant
    # waits for it, a while, rather than replace it too.
    it "refuses a stale file another claimant holds locked past its wait" do
      File.write(path, "#{dead_pid}\n")
      File.open(path) do |held|
        held.flock(File::LOCK_EX)
        expect { described_class.claim(path) }
          .to raise_error(Kino::Pidfile::ClaimError, /\Apidfile #{Regexp.escape(path)} is locked by another process/)
      end
    end

    it "names the file and the reason when it cannot create it" do
      missing = File.join(@dir, "no-such-dir", "kino.pid")
      expect { described_class.claim(missing) }
        .to raise_error(Kino::Pidfile::ClaimError, "cannot create pidfile #{missing}: No such file or directory")
    end

    it "writes mode 0644 whatever the umask" do
      previous = File.umask(0o077)
      pidfile = described_class.claim(path)
      expect(File.stat(path).mode & 0o777).to eq(0o644)
      pidfile.release
    ensure
      File.umask(previous) if previous
    end
  end

  describe "#release" do
    it "leaves a file that holds another pid" do
      pidfile = described_class.claim(path)
      File.write(path, "#{live_pid}\n")
      pidfile.release
      expect(File.read(path)).to eq("#{@sleepers.last}\n")
      expect(pidfile.claimed?).to be(false)
    end

    it "is a no-op in a fork child, and at the claimant's exit removes the file" do
      script = <<~RUBY
        require "kino/pidfile"
        pidfile = Kino::Pidfile.claim(ARGV[0])
        child = fork { pidfile.release } # its at_exit runs the release again
        Process.wait(child)
        puts Process.pid, $?.exitstatus, File.read(ARGV[0])
      RUBY
      stdout, stderr, status = run_ruby(script)
      expect([status.exitstatus, stderr]).to eq([0, ""])
      pid, child_status, content = stdout.lines.map(&:chomp)
      expect([child_status, content]).to eq(["0", pid])
      expect(File.exist?(path)).to be(false)
    end
  end

  # Claimants started together: exactly one wins, the file holds its pid,
  # and every other one refuses naming the file.
  describe "claimants racing" do
    claimant = <<~RUBY
      require "kino/pidfile"
      path, go = ARGV
      puts "ready"
      $stdout.flush
      sleep 0.001 until File.exist?(go)
      begin
        Kino::Pidfile.claim(path)
        puts "claimed"
      rescue Kino::Pidfile::ClaimError => e
        puts "refused: \#{e.message}"
      end
      $stdout.flush
      $stdin.read # alive, and holding its claim, until the spec lets go
    RUBY

    def race(script, count: 5)
      go = File.join(@dir, "go")
      claimants = Array.new(count) do
        IO.popen([RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), "-e", script, path, go], "r+")
      end
      claimants.each { |io| expect(io.gets).to eq("ready\n") }
      File.write(go, "")
      results = claimants.to_h { |io| [io.pid, io.gets.to_s.chomp] }
      winners = results.select { |_pid, line| line == "claimed" }.keys
      expect(winners.size).to eq(1), results.inspect
      expect(File.read(path)).to eq("#{winners.first}\n")
      results.each_value { |line| expect(line).to start_with("refused: pidfile #{path} ") unless line == "claimed" }
    ensure
      claimants&.each(&:close)
    end

    it "lets exactly one create a missing file" do
      race(claimant)
    end

    it "lets exactly one replace a stale file" do
      File.write(path, "#{dead_pid}\n")
      race(claimant)
    end
  end
end
