# frozen_string_literal: true

module Bench
  module Studies
    # The same app logic on Kino's :ractor and on Puma, once as it is and
    # once behind a Rack middleware that hands each request to a ractor
    # pool (puma+ractors: bench/ractor_pool_app.ru): what a Rack-level hop
    # to ractors costs against a server whose workers are ractors.
    RACTOR_POOL = Study.new(
      name: "ractor_pool",
      question: "what does a Rack-level hop to a ractor pool on Puma cost, against Kino's :ractor?",
      targets: %w[kino-ractor puma+ractors puma],
      endpoints: %w[plaintext cpu],
      ratios: [%w[puma+ractors kino-ractor]],
      conditions: [["Kino :ractor", "kino-ractor", "cpu"], ["Puma + ractor pool", "puma+ractors", "cpu"],
                   ["Puma", "puma", "cpu"]]
    )
  end
end
