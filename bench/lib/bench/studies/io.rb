# frozen_string_literal: true

module Bench
  module Studies
    # /io (sleep 5 ms) as :ractor workers are added, against Puma's 24
    # threads: how far do worker ractors, each of one thread, scale waiting?
    IO_SHAPES = %w[2x1 4x1 8x1 16x1 32x1].freeze
    IO_PUMA = "puma@2x12"

    IO = Study.new(
      name: "io",
      question: "how does /io scale with :ractor workers, against :threaded 2x12 and Puma 2x12?",
      targets: [*IO_SHAPES.map { |s| "kino-ractor@#{s}" }, "kino-threaded@2x12", IO_PUMA],
      endpoints: %w[io],
      ratios: [*IO_SHAPES.map { |s| ["kino-ractor@#{s}", IO_PUMA] }, ["kino-threaded@2x12", IO_PUMA]]
    )
  end
end
