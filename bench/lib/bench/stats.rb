# frozen_string_literal: true

module Bench
  # Medians over rounds, and ratios of medians between targets.
  module Stats
    module_function

    def median(values)
      sorted = values.compact.sort
      return nil if sorted.empty?

      mid = sorted.size / 2
      sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
    end

    # Median req/s per target for one endpoint, over the rounds measured.
    def medians(endpoint, cells)
      cells.select { |c| c.endpoint == endpoint }.group_by(&:target)
           .transform_values { |runs| median(runs.map(&:rps)) }
    end

    # A's median divided by B's, or nil when either is missing.
    def ratio(medians, numerator, denominator)
      a = medians[numerator]
      b = medians[denominator]
      a && b&.positive? ? a / b : nil
    end
  end
end
