# frozen_string_literal: true

require "rbconfig"
require "rubygems/package"
require "tmpdir"
require "kino"
require "kino/cli"
require "kino/launcher"

# The .gem that `gem build kino.gemspec` writes, opened and read: what an
# install needs is in it, and nothing a user should not get. (`rake
# gem:smoke` installs it and serves an app with it.)
RSpec.describe "kino.gemspec" do
  root = File.expand_path("..", __dir__)

  before(:context) do
    @dir = Dir.mktmpdir("kino-gem")
    path = File.join(@dir, "kino.gem")
    # Outside Bundler: the gem is built as a release would build it.
    env = { "RUBYOPT" => nil, "BUNDLE_GEMFILE" => nil, "RUBYLIB" => nil }
    out = IO.popen(env, [RbConfig.ruby, File.join(RbConfig::CONFIG["bindir"], "gem"), "build", "kino.gemspec",
                         "--output", path], chdir: root, err: %i[child out], &:read)
    raise "gem build failed:\n#{out}" unless $?.success? && File.file?(path)

    @package = Gem::Package.new(path)
    @contents = @package.contents
  end

  after(:context) { FileUtils.rm_rf(@dir) }

  attr_reader :contents

  it "ships every Ruby file that loading Kino and its CLI requires" do
    lib = File.join(root, "lib", "")
    loaded = $LOADED_FEATURES.select { |path| path.start_with?(lib) && path.end_with?(".rb") }
                             .map { |path| path.delete_prefix(root).delete_prefix("/") }
    expect(loaded).to include("lib/kino.rb", "lib/kino/server.rb", "lib/kino/cli.rb")
    expect(contents).to include(*loaded)
  end

  it "ships every C++ source and header the extension builds from, and extconf.rb" do
    sources = Dir.chdir(root) { Dir["ext/kino/{binding,core}/**/*.{cpp,hpp}"] }
    expect(sources.size).to be > 20
    expect(contents).to include("ext/kino/extconf.rb", *sources)
    expect(@package.spec.extensions).to eq(["ext/kino/extconf.rb"])
  end

  it "ships the kino executable, the --init template, the signatures and the hello example" do
    expect(contents).to include("exe/kino", "lib/kino/templates/kino.rb", "sig/kino.rbs",
                                "examples/hello/config.ru", "examples/hello/kino.rb", "README.md")
    expect(@package.spec.executables).to eq(["kino"])
  end

  it "ships no build product, test, benchmark or example app beyond hello" do
    expect(File).to exist(File.join(root, "lib", "kino", "kino.so")) # built in the checkout, not shipped
    wrong = contents.grep(%r{\A(?:tmp|spec|pkg|bench|bin|vendor|\.ci)/|/(?:tmp|log|vendor)/|
                             \.(?:so|o|d|gem|lock|log)\z|\Aext/kino/(?:test|fuzz)/|\Aexamples/(?!hello/)}x)
    expect(wrong).to eq([])
  end

  it "depends on rack 3 and on logger (a bundled gem, not a default one, from Ruby 4.0)" do
    runtime = @package.spec.runtime_dependencies.to_h { |dep| [dep.name, dep.requirement.to_s] }
    expect(runtime).to eq("rack" => ">= 3.0, < 4", "logger" => "~> 1.5")
  end
end
