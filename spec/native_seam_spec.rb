# frozen_string_literal: true

require "kino"

# The seam is listed once, in ext/kino/binding/native_seam.hpp, which registers it
# and publishes it as Kino::Native::SEAM: [name, arity, unit file] a row.
# The list must be what Ruby actually sees, and what doc/architecture.md
# tells a reader.
RSpec.describe "Kino::Native::SEAM" do
  let(:seam) { Kino::Native::SEAM }
  let(:architecture) { File.read(File.join(ServerHelper::ROOT, "doc", "architecture.md")) }

  # The rows of the table under "## The seam": [name, arity, unit file],
  # the arity read off the signature as Ruby counts it (-1 with an
  # optional argument).
  def documented_seam
    section = architecture[/^## The seam\n(.*?)(?=^## )/m, 1]
    section.scan(/^\| `([^`]+)` \| `([^`]+)` \|/).map do |signature, unit|
      name = signature[/\A[^( ]+/]
      arguments = signature[/\A[^ (]+\(([^)]*)\)/, 1].to_s.split(",").map(&:strip)
      arity = arguments.any? { |a| a.include?("=") } ? -1 : arguments.size
      [name, arity, unit]
    end
  end

  # One row a line, so a failure shows the rows that differ.
  def lines(rows)
    rows.map(&:inspect).join("\n")
  end

  it "is deep-frozen, so any ractor may read it" do
    expect(Ractor.shareable?(seam)).to be(true)
  end

  it "lists every function of Kino::Native with its arity, and nothing else" do
    functions = seam.reject { |name, _| name.include?("#") }.map { |name, arity, _| [name, arity] }
    seen = Kino::Native.singleton_methods.map { |m| [m.to_s, Kino::Native.method(m).arity] }
    expect(seen.sort).to eq(functions.sort)
  end

  it "lists every method of the classes under Kino::Native with its arity" do
    methods = seam.select { |name, _| name.include?("#") }.map { |name, arity, _| [name, arity] }
    classes = Kino::Native.constants.map { |c| Kino::Native.const_get(c) }.grep(Class)
    seen = classes.flat_map do |klass|
      owner = klass.name.delete_prefix("Kino::Native::")
      klass.instance_methods(false).map { |m| ["#{owner}##{m}", klass.instance_method(m).arity] }
    end
    expect(seen.sort).to eq(methods.sort)
  end

  it "puts each row in a unit file of ext/kino/binding" do
    units = seam.map { |_, _, unit| unit }.uniq
    missing = units.reject { |unit| File.file?(File.join(ServerHelper::ROOT, "ext", "kino", "binding", unit)) }
    expect(missing).to be_empty
  end

  it "is the seam table of doc/architecture.md, row for row" do
    expect(lines(documented_seam)).to eq(lines(seam))
  end
end
