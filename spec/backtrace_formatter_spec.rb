# frozen_string_literal: true

require "kino"

RSpec.describe Kino::BacktraceFormatter do
  # An ArgumentError raised +depth+ calls down, so its backtrace is at
  # least that long.
  def raised(depth)
    depth.zero? ? raise(ArgumentError, "bad") : raised(depth - 1)
  rescue ArgumentError => e
    e
  end

  it "puts the headline on its own line and the backtrace under it, indented" do
    error = raised(0)
    text = described_class.format("kino: it failed: ArgumentError: bad", error)
    lines = text.lines
    expect(lines.first).to eq("kino: it failed: ArgumentError: bad\n")
    expect(lines.drop(1)).to eq(error.backtrace.first(30).map { |line| "    #{line}\n" })
  end

  it "keeps the first 30 lines of a longer backtrace" do
    error = raised(40)
    expect(error.backtrace.size).to be > 30
    lines = described_class.format("kino: deep", error).lines
    expect(lines.size).to eq(31)
    expect(lines.last).to eq("    #{error.backtrace[29]}\n")
  end

  it "is the headline alone for an exception never raised" do
    expect(described_class.format("kino: made, not raised", RuntimeError.new("x"))).to eq("kino: made, not raised\n")
  end
end
