# frozen_string_literal: true

require "kino"

# Apps for the :auto rule (ADR 0006). Each answers where it ran, so a spec
# sees a worker ractor's name when :auto took :ractor.
module AutoModeApps
  def self.where
    Ractor.current == Ractor.main ? "main" : Ractor.current.name
  end

  class ClassApp
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["class app in #{AutoModeApps.where}\n"]]
    end
  end

  module ModuleApp
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["module app in #{AutoModeApps.where}\n"]]
    end
  end

  # Frozen by its author, and everything it holds with it.
  class FrozenGreeter
    def initialize(greeting)
      @greeting = greeting.dup.freeze
      freeze
    end

    def call(_env)
      [200, { "content-type" => "text/plain" }, ["#{@greeting} in #{AutoModeApps.where}\n"]]
    end
  end

  # A lambda made in a module method: its self (the module) and what it
  # captures are frozen.
  def self.lambda_greeter(greeting)
    # A fresh local, assigned once: Ruby 4.0 refuses to share a lambda
    # whose outer variable "may be reassigned".
    frozen_greeting = greeting.dup.freeze
    ->(_env) { [200, { "content-type" => "text/plain" }, ["#{frozen_greeting} in #{AutoModeApps.where}\n"]] }
  end

  # A frozen instance that holds a cache it fills: the Hash is the app's
  # and changes.
  class FrozenWithCache
    def initialize
      @cache = {}
      freeze
    end

    def call(env)
      @cache[env["PATH_INFO"]] ||= "cached #{env['PATH_INFO']}\n"
      [200, { "content-type" => "text/plain" }, [@cache[env["PATH_INFO"]]]]
    end
  end

  # Counts in a module-level instance variable, which a worker ractor may
  # not set (Ractor::IsolationError).
  module ClassLevelCounter
    def self.call(_env)
      @hits = (@hits || 0) + 1
      [200, { "content-type" => "text/plain" }, ["#{@hits}\n"]]
    end
  end

  # Counts in a constant Hash it changes: a worker ractor may not read it.
  class ConstantCounter
    HITS = Hash.new(0)

    def self.call(env)
      HITS[env["PATH_INFO"]] += 1
      [200, { "content-type" => "text/plain" }, ["#{HITS[env['PATH_INFO']]}\n"]]
    end
  end

  $kino_auto_spec_count = 0 # rubocop:disable Style/GlobalVars

  # Counts in a global: only the main ractor may read or set it.
  module GlobalCounter
    def self.call(_env)
      $kino_auto_spec_count += 1 # rubocop:disable Style/GlobalVars
      [200, { "content-type" => "text/plain" }, ["#{$kino_auto_spec_count}\n"]] # rubocop:disable Style/GlobalVars
    end
  end

  # A frozen instance whose code fills a constant's Hash.
  class ConstantCache
    CACHE = {} # rubocop:disable Style/MutableConstant

    def call(env)
      CACHE[env["PATH_INFO"]] ||= "cached #{env['PATH_INFO']}\n"
      [200, { "content-type" => "text/plain" }, [CACHE[env["PATH_INFO"]]]]
    end
  end

  # Reads constants frozen by their author: one here, and a frozen Hash
  # outside the app's namespace holding a String that is not frozen (Kino
  # deep-freezes it).
  class ReadsFrozenConstants
    GREETING = "hi"

    def self.call(_env)
      [200, { "content-type" => "text/plain" },
       ["#{GREETING} #{::KINO_AUTO_SPEC_TABLE['name']} in #{AutoModeApps.where}\n"]]
    end
  end

  # Middleware of the app's own: Kino cannot know that it never changes.
  class Tagging
    def initialize(app)
      @app = app
    end

    def call(env)
      status, headers, body = @app.call(env)
      [status, headers.merge("x-tagged" => "yes"), body]
    end
  end
end

# Kills the forked check (which reads a module's name) but not the
# process that loaded it. Outside AutoModeApps, whose modules the check of
# every app there walks.
module KinoAutoSpecDiesInCheck
  LOADED_IN = Process.pid

  def self.name
    Process.kill(:KILL, Process.pid) unless Process.pid == LOADED_IN
    super
  end

  def self.call(_env)
    [200, { "content-type" => "text/plain" }, ["served in #{AutoModeApps.where}\n"]]
  end
end

# A constant frozen at the top only, in a namespace of its own: preparing
# for ractors would deep-freeze it.
module KinoAutoSpecUnprepared
  TABLE = { "name" => String.new("table") }.freeze

  def self.call(_env)
    [200, { "content-type" => "text/plain" }, ["#{TABLE['name']} in #{AutoModeApps.where}\n"]]
  end
end

KINO_AUTO_SPEC_TABLE = { "name" => String.new("table") }.freeze

RSpec.describe "mode :auto never freezes what the app made" do
  include RackupFixtures

  # A server with the default configuration but for the port, one worker
  # and one thread (and +options+): no mode given, so :auto decides.
  def start_default(app, **options)
    @server_log = StringIO.new
    @server = Kino::Server.new(app, log: @server_log, bind: "127.0.0.1", port: 0, workers: 1, threads: 1, **options)
    (@servers ||= []) << @server
    @server.start
  end

  # Starts +app+ as #start_default does and expects :auto to have chosen
  # :threaded, saying why: +reason+ is how the log's line begins after
  # "#{said_by}running in :threaded mode: ".
  def expect_threaded(app, reason)
    start_default(app)
    expect(server.mode).to eq(:threaded)
    expect(server_log).to start_with("#{said_by}running in :threaded mode: #{reason}")
  end

  # The lines `kino --check +rackup+` prints, once it has exited 1 with
  # nothing on stderr.
  def check_lines(rackup)
    kino = spawn_kino("--check", rackup, wait: false)
    status = kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)
    expect([status&.exitstatus, kino.stderr]).to eq([1, ""])
    kino.stdout.lines(chomp: true)
  end

  # Boots +rackup+ under `kino -m ractor`: the boot log lists +listed+ as
  # the one object frozen, and the app's first change to it fails.
  def expect_frozen_at_boot(rackup, listed)
    kino = spawn_kino("-m", "ractor", "-w", "1", rackup, port: port)
    expect(kino.stdout).to include("* Mode: ractor, 1 workers x 1 threads")
    expect(kino.stderr.lines.first(2)).to eq(
      ["#{said_by(pid: kino.pid)}mode :ractor froze 1 object that the app made " \
       "(code that changes them now raises FrozenError):\n",
       "  - #{listed}\n"]
    )
    expect(http_get("/", port: port).code).to eq("500")
    wait_until(message: -> { "no FrozenError logged: #{kino.stderr}" }) { kino.stderr.include?("FrozenError") }
  end

  let(:port) { free_port }

  describe "a counter whose call does @n += 1, booted as a new user does" do
    it "runs :threaded under `kino` with no config, answers 1, 2, 3, and the boot line names object and ivar" do
      kino = spawn_kino("-w", "1", "spec/fixtures/counter.ru", port: port)
      expect(kino.stdout).to include("* Mode: threaded, 1 workers x 3 threads")
      expect(Array.new(3) { http_get("/", port: port) }.map { |r| [r.code, r.body] })
        .to eq([["200", "1\n"], ["200", "2\n"], ["200", "3\n"]])
      expect(kino.stderr).to eq(
        "#{said_by(pid: kino.pid)}running in :threaded mode: :ractor mode would freeze app (a KinoFixtureCounter), " \
        "whose code sets @n; `mode :ractor` freezes what the app made and runs it in ractors " \
        "(`kino --check` lists each object and where it was made)\n"
      )
    end

    it "runs :threaded from Kino::Server with the default mode, and counts" do
      expect_threaded(fixture_app("counter.ru"),
                      ":ractor mode would freeze app (a KinoFixtureCounter), whose code sets @n;")
      expect(Array.new(3) { http_get("/").body }).to eq(["1\n", "2\n", "3\n"])
    end

    it "is listed by `kino --check` with its ivar and the line that made it, exit 1" do
      expect(check_lines("spec/fixtures/counter.ru")).to eq(
        [
          "kino --check: spec/fixtures/counter.ru cannot run in :ractor mode (1 object the app made would be frozen):",
          "  - app (a KinoFixtureCounter), whose code sets @n (made at spec/fixtures/counter.ru:17)",
          "With `mode :auto` (the default) it runs in :threaded mode instead; " \
          "`mode :ractor` freezes these and runs it in ractors."
        ]
      )
    end

    it "is frozen under `mode :ractor`, which says so at boot" do
      expect_frozen_at_boot("spec/fixtures/counter.ru", "app (a KinoFixtureCounter), whose code sets @n")
    end
  end

  it "runs a memoizing app (@greeting ||= ...) :threaded, naming the ivar its code sets" do
    expect_threaded(fixture_app("memo.ru"),
                    ":ractor mode would freeze app (a KinoFixtureMemo), whose code sets @greeting;")
    expect(Array.new(2) { http_get("/").body }).to eq(["hello, #{Process.pid}\n"] * 2)
  end

  it "runs a config.ru lambda that sets an ivar on its Rack::Builder :threaded, and counts" do
    expect_threaded(fixture_app("builder_counter.ru"),
                    ":ractor mode would freeze self of app (the Rack::Builder that ran " \
                    "#{File.join(ServerHelper::FIXTURES, 'builder_counter.ru')}), whose code sets @count;")
    expect(Array.new(3) { http_get("/").body }).to eq(["1\n", "2\n", "3\n"])
  end

  it "runs a frozen instance holding a Hash it fills :threaded, naming the Hash" do
    expect_threaded(AutoModeApps::FrozenWithCache.new, ":ractor mode would freeze app.@cache (a Hash);")
    expect(Array.new(2) { http_get("/a").body }).to eq(["cached /a\n"] * 2)
  end

  it "runs a module app that sets its own class-level ivar :threaded, naming it, and counts" do
    expect_threaded(AutoModeApps::ClassLevelCounter,
                    "AutoModeApps::ClassLevelCounter: its class-level code sets @hits; worker ractors cannot set " \
                    "a class's or module's instance variables (`kino --check` lists every blocker)")
    expect(Array.new(3) { http_get("/").body }).to eq(["1\n", "2\n", "3\n"])
  end

  describe "code that reads constants and globals" do
    it "runs an app counting in a constant Hash :threaded, naming it, and counts" do
      expect_threaded(AutoModeApps::ConstantCounter,
                      ":ractor mode would freeze AutoModeApps::ConstantCounter::HITS (a Hash that is not frozen, " \
                      "read by AutoModeApps::ConstantCounter.call); `mode :ractor` freezes what the app made")
      expect(Array.new(3) { http_get("/").body }).to eq(["1\n", "2\n", "3\n"])
    end

    it "runs an app counting in a global :threaded, naming it, and counts" do
      start_default(AutoModeApps::GlobalCounter)
      expect(server.mode).to eq(:threaded)
      expect(server_log).to eq("#{said_by}running in :threaded mode: AutoModeApps::GlobalCounter.call: " \
                               "uses the global " \
                               "$kino_auto_spec_count; worker ractors cannot read or set it (`kino --check` lists " \
                               "every blocker)\n")
      before = $kino_auto_spec_count # rubocop:disable Style/GlobalVars
      expect(Array.new(3) { http_get("/").body }).to eq(Array.new(3) { |i| "#{before + i + 1}\n" })
    end

    it "runs a frozen instance filling a constant's Hash :threaded, naming the constant" do
      expect_threaded(AutoModeApps::ConstantCache.new.freeze,
                      ":ractor mode would freeze AutoModeApps::ConstantCache::CACHE (a Hash that is not frozen, " \
                      "read by AutoModeApps::ConstantCache#call);")
      expect(Array.new(2) { http_get("/a").body }).to eq(["cached /a\n"] * 2)
    end

    it "still runs an app reading constants frozen at the top in :ractor mode" do
      start_default(AutoModeApps::ReadsFrozenConstants)
      expect([server.mode, server_log]).to eq([:ractor, ""])
      expect(http_get("/").body).to eq("hi table in kino-worker-0\n")
    end

    it "is listed by `kino --check` when a constant is not frozen, exit 1" do
      expect(check_lines("spec/fixtures/hits.ru")).to eq(
        [
          "kino --check: spec/fixtures/hits.ru cannot run in :ractor mode (1 object the app made would be frozen):",
          "  - KinoFixtureHits::HITS (a Hash that is not frozen, read by KinoFixtureHits.call) " \
          "(made at spec/fixtures/hits.ru:6)",
          "With `mode :auto` (the default) it runs in :threaded mode instead; " \
          "`mode :ractor` freezes these and runs it in ractors."
        ]
      )
    end

    it "freezes the constant under `mode :ractor`, which lists it at boot" do
      expect_frozen_at_boot("spec/fixtures/hits.ru", "KinoFixtureHits::HITS (a Hash that is not frozen, read by " \
                                                     "KinoFixtureHits.call) (made at spec/fixtures/hits.ru:6)")
    end

    it "warns at boot under `mode :ractor` of a global the workers cannot use" do
      start_default(AutoModeApps::GlobalCounter, mode: :ractor)
      expect(server.mode).to eq(:ractor)
      expect(server_log.lines.first(2)).to eq(
        ["#{said_by}mode :ractor runs code that worker ractors refuse (it raises Ractor::IsolationError there):\n",
         "  - AutoModeApps::GlobalCounter.call: uses the global $kino_auto_spec_count; worker ractors cannot " \
         "read or set it\n"]
      )
      expect(http_get("/").code).to eq("500")
    end

    it "runs the HITS app under `kino` with no config :threaded and counts" do
      kino = spawn_kino("-w", "1", "spec/fixtures/hits.ru", port: port)
      expect(kino.stdout).to include("* Mode: threaded, 1 workers x 3 threads")
      expect(Array.new(3) { http_get("/", port: port).body }).to eq(["1\n", "2\n", "3\n"])
      expect(kino.stderr).to include("KinoFixtureHits::HITS (a Hash that is not frozen")
    end
  end

  it "runs :threaded, saying why, when the forked check dies" do
    start_default(KinoAutoSpecDiesInCheck)
    expect(server.mode).to eq(:threaded)
    expect(server_log).to eq("#{said_by}running in :threaded mode: app: checking it failed: the forked check was " \
                             "killed by SIGKILL (`kino --check` lists every blocker)\n")
    expect(http_get("/").body).to eq("served in main\n")
  end

  it "is reported by `kino --check` when the forked check dies, exit 1" do
    expect(check_lines("spec/fixtures/dies_in_check.ru").first(2)).to eq(
      ["kino --check: spec/fixtures/dies_in_check.ru cannot run in :ractor mode (1 blocker):",
       "  - app: checking it failed: the forked check was killed by SIGKILL"]
    )
  end

  it "runs :threaded, preparing nothing, when other ractors already run in the process" do
    ractor_server = Kino::Server.new(AutoModeApps::ClassApp, log: StringIO.new, bind: "127.0.0.1", port: 0,
                                                             workers: 1, threads: 1, mode: :ractor)
    (@servers ||= []) << ractor_server
    ractor_server.start
    start_default(KinoAutoSpecUnprepared)
    expect(server.mode).to eq(:threaded)
    expect(server_log).to eq("#{said_by}running in :threaded mode: app: checking it failed: " \
                             "other ractors already run " \
                             "in this process, so it cannot be checked in a forked child, and checking it here " \
                             "would freeze its constants (`kino --check` lists every blocker)\n")
    expect(Ractor.shareable?(KinoAutoSpecUnprepared::TABLE)).to be(false)
    expect(http_get("/").body).to eq("table in main\n")
  end

  {
    "a class app" => [AutoModeApps::ClassApp, "class app in kino-worker-0\n"],
    "a module app" => [AutoModeApps::ModuleApp, "module app in kino-worker-0\n"],
    "a frozen instance" => [AutoModeApps::FrozenGreeter.new("frozen"), "frozen in kino-worker-0\n"],
    "a lambda capturing only frozen values" => [AutoModeApps.lambda_greeter("captured"), "captured in kino-worker-0\n"]
  }.each do |kind, (app, body)|
    it "still runs #{kind} in :ractor mode, without a warning" do
      start_default(app)
      expect(server.mode).to eq(:ractor)
      expect(http_get("/").body).to eq(body)
      expect(server_log).to eq("")
    end
  end

  it "still runs a config.ru lambda capturing frozen values and calling the file's helper in :ractor mode" do
    start_default(fixture_app("greeting.ru"))
    expect(server.mode).to eq(:ractor)
    expect(http_get("/").body).to eq("hello from kino-worker-0\n")
    expect(server_log).to eq("")
  end

  describe "a Rack::Builder stack" do
    it "of Rack's own middleware and a map around a module app runs in :ractor mode" do
      start_default(fixture_app("rack_stack.ru"))
      expect(server.mode).to eq(:ractor)
      expect(server_log).to eq("")
      response = http_get("/mapped/page")
      expect([response.code, response.body]).to eq(["200", "/mapped/page in kino-worker-0\n"])
      expect(response["content-length"]).to eq(response.body.bytesize.to_s) # Rack::ContentLength
      expect(response["etag"]).to match(%r{\AW/"\h{32}"\z}) # Rack::ETag
      expect(http_get("/other").body).to eq("/other in kino-worker-0\n")
    end

    it "with the app's own middleware runs :threaded, naming that middleware" do
      app = Rack::Builder.new do
        use Rack::ContentLength
        use AutoModeApps::Tagging
        run AutoModeApps::ModuleApp
      end.to_app
      expect_threaded(app, ":ractor mode would freeze app.@app (an AutoModeApps::Tagging), which holds @app;")
      response = http_get("/")
      expect([response.body, response["x-tagged"], response["content-length"]])
        .to eq(["module app in main\n", "yes", "19"])
    end
  end
end
