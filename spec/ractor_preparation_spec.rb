# frozen_string_literal: true

require "kino"

# Apps for #prepare!, which changes the app's namespace in this process
# (ractor_check_spec.rb's PreparationSpecApps are only ever probed, in a
# forked child, so they stay as they are).
module PreparedSpecApps
  # A hook as a config would give it: a plain lambda, not yet shareable.
  def self.boot_hook
    -> { :booted }
  end

  SETTINGS = { "greeting" => %w[hello from settings] }.freeze

  module ReadsSettings
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["#{SETTINGS['greeting'].join(' ')}\n"]]
    end
  end
end

# An app whose namespace autoloads one file that loads and one that raises.
module PreparedSpecAutoloads
  autoload :FINE, File.expand_path("fixtures/autoloads/fine.rb", __dir__)
  autoload :BROKEN, File.expand_path("fixtures/autoloads/broken.rb", __dir__)

  def self.call(_env)
    [200, {}, [FINE]]
  end
end

RSpec.describe Kino::RactorPreparation do
  include RackupFixtures

  describe "#prepare!" do
    it "deep-freezes a constant frozen at the top in the app's namespace, and shares app and hooks" do
      boot = PreparedSpecApps.boot_hook
      expect(Ractor.shareable?(boot)).to be(false)
      app, hooks = described_class.new(PreparedSpecApps::ReadsSettings, after_worker_boot: boot).prepare!
      expect(app).to be(PreparedSpecApps::ReadsSettings)
      expect(hooks.keys).to eq([:after_worker_boot])
      expect(Ractor.shareable?(hooks[:after_worker_boot])).to be(true)
      expect(hooks[:after_worker_boot].call).to eq(:booted)
      expect(Ractor.shareable?(PreparedSpecApps::SETTINGS)).to be(true)
      expect(PreparedSpecApps::SETTINGS["greeting"]).to be_frozen
    end

    it "keeps the ivars config.ru gave its Rack::Builder, frozen, and removes only Rack's building state" do
      app, = described_class.new(fixture_app("builder_greeting.ru")).prepare!
      expect(Ractor.shareable?(app)).to be(true)
      expect(app.call({})[2]).to eq(["hello from the builder\n"])
    end

    it "loads the autoloads of the app's namespace, passing over one whose file raises" do
      app, = described_class.new(PreparedSpecAutoloads).prepare!
      expect(PreparedSpecAutoloads.autoload?(:FINE)).to be_nil
      expect(app.call({})[2]).to eq(["loaded"])
    end

    it "raises UnshareableAppError for an app that cannot be shared" do
      expect { described_class.new(UnshareableApps::HoldsMutex.new).prepare! }
        .to raise_error(Kino::UnshareableAppError, /cannot be shared between ractors/)
    end
  end
end
