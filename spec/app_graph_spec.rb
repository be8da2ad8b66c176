# frozen_string_literal: true

require "kino"

# Holds what it is given; makes lambdas whose self it is.
class GraphSpecHolder
  @class_level = Object.new # behind a module: not walked

  class << self
    attr_reader :class_level
  end

  def initialize(held = nil)
    @held = held
  end

  def make_lambda
    ->(_env) { @held }
  end
end

GraphSpecPair = Struct.new(:left, :right)

RSpec.describe Kino::AppGraph do
  def walked(root)
    found = []
    described_class.each_object(root) { |obj| found << obj }
    found
  end

  def includes_identical?(list, obj)
    list.any? { |o| o.equal?(obj) }
  end

  it "reaches objects through instance variables, arrays, hash keys and values, structs and a proc's self" do
    objects = Array.new(6) { Object.new }
    lambda = GraphSpecHolder.new(objects[5]).make_lambda
    root = GraphSpecHolder.new([objects[0], { objects[1] => objects[2] }, GraphSpecPair.new(objects[3], objects[4]),
                                lambda])
    found = walked(root)
    objects.each { |obj| expect(includes_identical?(found, obj)).to be(true) }
  end

  it "yields each object once, and does not walk into a module" do
    shared = Object.new
    found = walked([shared, shared, GraphSpecHolder])
    expect(found.count { |obj| obj.equal?(shared) }).to eq(1)
    expect(includes_identical?(found, GraphSpecHolder)).to be(true)
    expect(includes_identical?(found, GraphSpecHolder.class_level)).to be(false)
  end

  it "names each child by the step that leads to it" do
    lambda = GraphSpecHolder.new.make_lambda
    steps = described_class.children({ a: 1 }).map(&:first) +
            described_class.children(GraphSpecPair.new(1, 2)).map(&:first) +
            described_class.children(lambda).map(&:first)
    expect(steps).to eq([%i[value_of a], %i[key a], %i[member left], %i[member right], [:self]])
    expect(described_class.children(GraphSpecHolder.new(:x)).map(&:first)).to eq([:@held])
  end

  it "counts a Mutex, a Thread and an IO among what can never be shared" do
    expect(described_class::NEVER_SHAREABLE).to include(Thread::Mutex, Thread, IO)
  end
end
