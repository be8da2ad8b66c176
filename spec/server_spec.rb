# frozen_string_literal: true

require "kino"

# HTTP behaviour of Kino::Server, seen from real clients on a real socket:
# the same examples (spec/support/http_examples.rb) in both modes.
RSpec.describe Kino::Server do
  %i[threaded ractor].each do |mode|
    context "in :#{mode} mode" do
      it_behaves_like "a Kino HTTP server", mode
    end
  end
end
