# frozen_string_literal: true

require "kino"
require "objspace"

# Apps that cannot run in worker ractors, each for its own reason, and one
# that can once prepared. Lambdas are made by module methods, so their self
# (the module) is shareable and only what they capture is in the way.
module PreparationSpecApps
  # The captured variable is assigned twice: Ruby 4.0 refuses the lambda for
  # that alone, older Rubies for the String it holds.
  def self.capturing_reassigned
    greeting = "hello"
    greeting = "#{greeting}\n"
    ->(_env) { [200, { "content-type" => "text/plain" }, [greeting]] }
  end

  def self.capturing_two
    hits = {}
    seen = []
    lambda do |_env|
      hits[:n] = seen.push(1).size
      [200, { "content-type" => "text/plain" }, ["#{hits[:n]}\n"]]
    end
  end

  class ClassVariable
    @@served = 0 # rubocop:disable Style/ClassVars

    def self.call(_env)
      @@served += 1 # rubocop:disable Style/ClassVars
      [200, { "content-type" => "text/plain" }, ["#{@@served}\n"]]
    end
  end

  # Frozen at the top only: the author meant a constant, but the Array
  # inside is not frozen, so workers could not read it as it stands.
  SETTINGS = { "greeting" => %w[hello from settings] }.freeze

  module ReadsSettings
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["#{SETTINGS['greeting'].join(' ')}\n"]]
    end
  end
end

# Objects under the :auto rule (RactorEligibility): which of them Kino may
# freeze, and which are the app's own state.
module EligibilitySpecApps
  module Inner
    def self.call(_env)
      [200, {}, ["inner\n"]]
    end
  end

  # Rack's ContentLength, but a class of the app's: it may have code of
  # its own.
  class OwnContentLength < Rack::ContentLength
    def call(env)
      @calls = (@calls || 0) + 1
      super
    end
  end

  class Visits
    def call(_env)
      @visits = (@visits || 0) + 1
      [200, {}, ["#{@visits}\n"]]
    end
  end
end

# An app whose namespace autoloads a file that never finishes loading: the
# forked check, which loads autoloads first, gets stuck there.
module StuckCheckApp
  autoload :NEVER, File.expand_path("fixtures/autoloads/never.rb", __dir__)

  def self.call(_env)
    [200, {}, []]
  end
end

RSpec.describe Kino::RactorCheck do
  include RackupFixtures

  def check_of(app, hooks = {})
    described_class.new(Kino::RactorPreparation.new(app, hooks))
  end

  def diagnosis_of(app, hooks = {})
    check_of(app, hooks).diagnose
  end

  def blockers_of(app, hooks = {})
    diagnosis_of(app, hooks).blockers
  end

  def app_state_of(app)
    diagnosis_of(app).app_state.map(&:to_s)
  end

  describe "#diagnose: blockers" do
    it "names a Hash that a config.ru lambda captures, where the lambda is, and how to fix it" do
      blockers = blockers_of(fixture_app("capture.ru"))
      expect(blockers.map(&:to_h)).to match(
        [{ path: "app (captured variable `counts`)", problem: "holds a Hash, which is not shareable",
           hint: a_string_including("counts = Ractor.make_shareable(...)"),
           location: a_string_ending_with("spec/fixtures/capture.ru:7") }]
      )
    end

    it "names every captured variable in the way, not only the first" do
      blockers = blockers_of(PreparationSpecApps.capturing_two)
      expect(blockers.map(&:path)).to contain_exactly("app (captured variable `hits`)",
                                                      "app (captured variable `seen`)")
    end

    it "names a captured variable that is assigned twice, on every Ruby" do
      blockers = blockers_of(PreparationSpecApps.capturing_reassigned)
      expect(blockers.map(&:path)).to eq(["app (captured variable `greeting`)"])
    end

    it "names a class-level instance variable holding a mutable Hash" do
      blockers = blockers_of(fixture_app("class_ivar.ru"))
      expect(blockers.map(&:summary))
        .to eq(["KinoFixtureClassIvarApp.@cache: holds a Hash; worker ractors cannot read it"])
      expect(blockers.first.location).to end_with("spec/fixtures/class_ivar.ru:6")
    end

    it "names a Mutex held by the app, which can never be shared" do
      expect(blockers_of(UnshareableApps::HoldsMutex.new).map(&:summary))
        .to eq(["app.@lock: Thread::Mutex can never be shared between ractors"])
    end

    it "names a class variable" do
      expect(blockers_of(PreparationSpecApps::ClassVariable).map(&:summary))
        .to eq(["PreparationSpecApps::ClassVariable@@served: is a class variable; " \
                "worker ractors cannot read or write it"])
    end

    it "names a lambda whose self cannot be shared" do
      app = ->(_env) { [200, {}, []] } # self: this example
      blockers = blockers_of(app)
      expect(blockers.map(&:path)).to eq(["app"])
      expect(blockers.first.problem).to start_with("a lambda whose self is a ")
      expect(blockers.first.location).to eq("#{__FILE__}:#{__LINE__ - 4}")
    end

    it "checks the hooks that run inside workers, by name" do
      queue = Queue.new
      blockers = blockers_of(PreparationSpecApps::ReadsSettings, after_worker_boot: -> { queue.clear })
      expect(blockers.map(&:path)).to eq(["after_worker_boot"])
    end

    it "finds nothing in the way of a middleware stack frozen with freeze_app" do
      expect(blockers_of(fixture_app("stack.ru"))).to eq([])
    end

    it "changes nothing in this process: the probing happens in a forked child" do
      app = fixture_app("capture.ru")
      expect(blockers_of(app)).not_to be_empty
      expect(blockers_of(PreparationSpecApps::ReadsSettings)).to eq([])
      expect(Ractor.shareable?(app)).to be(false)
      expect(PreparationSpecApps::SETTINGS["greeting"]).not_to be_frozen
      # The app still works, with its captured Hash still writable.
      expect(app.call({})[2]).to eq(["hit 1\n"])
      expect(app.call({})[2]).to eq(["hit 2\n"])
    end
  end

  describe "#diagnose: the forked child" do
    # Marshal's bytes for a diagnosis this long are not valid UTF-8, and an
    # app may set Encoding.default_internal (Rails does): the pipe must not
    # transcode them.
    it "reports back while the app has set Encoding.default_internal" do
      internal = Encoding.default_internal
      Encoding.default_internal = Encoding::UTF_8
      blockers = blockers_of(fixture_app("capture.ru"))
      expect(blockers.map(&:path)).to eq(["app (captured variable `counts`)"])
    ensure
      Encoding.default_internal = internal
    end

    it "is killed when it has not reported within its timeout, and the diagnosis says so" do
      check = described_class.new(Kino::RactorPreparation.new(StuckCheckApp, {}), child_timeout: 0.5)
      started = monotonic
      blockers = check.diagnose.blockers
      expect(blockers.map(&:summary)).to eq(["app: checking it failed: the forked check was killed by SIGKILL"])
      expect(monotonic - started).to be < 10
    end
  end

  describe "#diagnose: app state (what :ractor mode would freeze that the app made)" do
    it "names an instance whose code sets an ivar, and nothing else in a stack of Rack's own middleware" do
      app = Rack::Builder.new do
        use Rack::Head
        use Rack::ETag
        use Rack::ContentLength
        run EligibilitySpecApps::Visits.new
      end.to_app
      expect(app_state_of(app)).to eq(["app.@app.@app.@app (an EligibilitySpecApps::Visits), whose code sets @visits"])
      expect(blockers_of(app)).to eq([])
    end

    it "lets Kino freeze URLMap's table, which Rack built, but not an app inside it" do
      clean = Rack::URLMap.new("/a" => EligibilitySpecApps::Inner, "http://example.com/b" => EligibilitySpecApps::Inner)
      expect(app_state_of(clean)).to eq([])
      mixed = Rack::URLMap.new("/a" => EligibilitySpecApps::Visits.new)
      expect(app_state_of(mixed))
        .to eq(["app.@mapping[0][3] (an EligibilitySpecApps::Visits), whose code sets @visits"])
    end

    it "counts a value the config passed to Rack's middleware as the app's, unless it is frozen" do
      expect(app_state_of(Rack::ContentType.new(EligibilitySpecApps::Inner, +"text/plain")))
        .to eq(["app.@content_type (a String)"])
      expect(app_state_of(Rack::ContentType.new(EligibilitySpecApps::Inner, "text/plain"))).to eq([])
    end

    it "counts a subclass of Rack's middleware, and one given methods of its own, as the app's" do
      expect(app_state_of(EligibilitySpecApps::OwnContentLength.new(EligibilitySpecApps::Inner)))
        .to eq(["app (an EligibilitySpecApps::OwnContentLength), whose code sets @calls"])
      patched = Rack::ContentLength.new(EligibilitySpecApps::Inner)
      patched.define_singleton_method(:call) { |env| @app.call(env) }
      expect(app_state_of(patched)).to eq(["app (a Rack::ContentLength), which holds @app"])
    end

    it "names an ivar config.ru gave its Rack::Builder, and says where an object was made when traced" do
      app = ObjectSpace.trace_object_allocations { fixture_app("builder_greeting.ru") }
      fixture = File.join(ServerHelper::FIXTURES, "builder_greeting.ru")
      expect(app_state_of(app)).to eq(["self of app (the Rack::Builder that ran #{fixture}), which holds @greeting"])
      counter = ObjectSpace.trace_object_allocations { EligibilitySpecApps::Visits.new }
      expect(app_state_of(counter)).to eq(["app (an EligibilitySpecApps::Visits), whose code sets @visits " \
                                           "(made at #{__FILE__}:#{__LINE__ - 2})"])
    end

    it "stops at the first finding with first_only" do
      app = Rack::URLMap.new("/a" => EligibilitySpecApps::Visits.new, "/b" => EligibilitySpecApps::Visits.new)
      expect(check_of(app).diagnose.app_state.size).to eq(2)
      expect(check_of(app).diagnose(first_only: true).app_state.size).to eq(1)
    end
  end

  describe "#explain" do
    it "lists every blocker with its hint, and says what to do" do
      check = check_of(PreparationSpecApps.capturing_two)
      lines = check.explain(check.diagnose.blockers).lines(chomp: true)
      expect(lines.first).to eq("the app cannot run in :ractor mode (2 blockers):")
      expect(lines.grep(/^  - app \(captured variable `(hits|seen)`\): holds an? (Hash|Array)/).size).to eq(2)
      expect(lines.grep(/^    hint: /).size).to eq(2)
      expect(lines.last).to eq("Run it with `mode :threaded`, or fix the above (kino --check re-checks).")
    end
  end
end
