# frozen_string_literal: true

require_relative "study"
require_relative "studies/topology"
require_relative "studies/io"
require_relative "studies/logging"
require_relative "studies/ractor_pool"

module Bench
  # bench/studies.rb's studies, by the name --study takes.
  module Studies
    ALL = [TOPOLOGY, IO, LOGGING, RACTOR_POOL].to_h { |study| [study.name, study] }.freeze

    def self.fetch(name)
      ALL.fetch(name) do
        raise OptionParser::InvalidArgument, "--study #{name.inspect}: expected one of #{ALL.keys.join(', ')}"
      end
    end
  end
end
