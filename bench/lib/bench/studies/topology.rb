# frozen_string_literal: true

module Bench
  module Studies
    # Which workers x threads shape serves best in each mode, against the
    # best of a few Puma cluster shapes.
    KINO_SHAPES = %w[1x1 2x1 4x1 2x3 4x2].freeze
    PUMA_SHAPES = %w[2x3 2x5 4x3].freeze

    TOPOLOGY = Study.new(
      name: "topology",
      question: "which workers x threads shape serves best, in each Kino mode and in a Puma cluster?",
      targets: [*%w[kino-ractor kino-threaded].product(KINO_SHAPES).map { |t, s| "#{t}@#{s}" },
                *PUMA_SHAPES.map { |s| "puma@#{s}" }],
      endpoints: %w[plaintext cpu],
      best_of: %w[kino-ractor kino-threaded puma]
    )
  end
end
