# frozen_string_literal: true

require "pathname"
require "rbs"
require "kino"
require "kino/cli"
require "kino/dsl"

# sig/kino.rbs against the code: every public method of the public classes
# has a signature, and no signature names a method that is gone, so the
# signatures cannot quietly fall behind. (`rake rbs:validate` checks that
# the types they use exist.)
RSpec.describe "sig/kino.rbs" do
  root = File.expand_path("..", __dir__)

  # The classes whose public methods sig/kino.rbs must cover, all of them.
  covered = %w[
    Kino::Server Kino::Configuration Kino::DSL Kino::Logger Kino::Logger::Device
    Kino::Input Kino::Input::Empty Kino::CLI Kino::WorkerCrash
  ].freeze

  # Loading RBS's core signatures takes a second or two: once for the file.
  before(:context) do
    loader = RBS::EnvironmentLoader.new
    loader.add(library: "logger")
    loader.add(path: Pathname(File.join(root, "sig")))
    @builder = RBS::DefinitionBuilder.new(env: RBS::Environment.from_loader(loader).resolve_type_names)
  end

  attr_reader :builder

  def type_name(name)
    RBS::TypeName.parse("::#{name}")
  end

  # The public methods the signature of +name+ declares itself (not those
  # of ::Logger or Object), for instances or for the class itself.
  def declared(definition, name)
    definition.methods.select { |_, method| method.defined_in == type_name(name) && method.public? }.keys.sort
  end

  def instance_signatures(name)
    declared(builder.build_instance(type_name(name)), name)
  end

  def singleton_signatures(name)
    declared(builder.build_singleton(type_name(name)), name) - %i[new]
  end

  # Methods without a signature, and signatures of methods that are gone.
  def gaps(methods, signatures)
    { unsigned: (methods - signatures).sort, gone: (signatures - methods).sort }
  end

  covered.each do |name|
    it "gives every public instance method of #{name} a signature, and no other" do
      klass = Object.const_get(name)
      expect(gaps(klass.public_instance_methods(false), instance_signatures(name))).to eq(unsigned: [], gone: [])
    end

    it "gives every public method of #{name} itself a signature, and no other" do
      klass = Object.const_get(name)
      expect(gaps(klass.singleton_methods(false), singleton_signatures(name))).to eq(unsigned: [], gone: [])
    end
  end

  it "covers Kino's own module functions (Kino.sleep, Kino.available_parallelism)" do
    expect(gaps(Kino.singleton_methods(false), singleton_signatures("Kino"))).to eq(unsigned: [], gone: [])
  end

  it "declares each class with the superclass it has" do
    kino_classes = builder.env.class_decls.keys.map(&:to_s).grep(/\A::Kino::/).reject do |name|
      builder.env.class_decls[type_name(name.delete_prefix("::"))].is_a?(RBS::Environment::ModuleEntry)
    end
    expect(kino_classes).to include(*covered.map { |name| "::#{name}" }, "::Kino::Error", "::Kino::ConfigError")

    kino_classes.each do |rbs_name|
      name = rbs_name.delete_prefix("::")
      superclass = builder.ancestor_builder.one_instance_ancestors(type_name(name)).super_class.name
      expect([name, Object.const_get(name).superclass.name]).to eq([name, superclass.to_s.delete_prefix("::")])
    end
  end

  it "declares every error Kino defines" do
    errors = Kino.constants.map { |constant| Kino.const_get(constant) }
                 .select { |value| value.is_a?(Class) && value <= Exception }
                 .map(&:name)
    declared_classes = builder.env.class_decls.keys.map { |type| type.to_s.delete_prefix("::") }
    expect(declared_classes).to include(*errors)
  end
end
