# frozen_string_literal: true

# Most HTTP behaviour holds in both modes, so its examples run twice: with
# the app on threads of the main ractor (:threaded) and in worker ractors
# (:ractor). Extended into every example group.
module EachMode
  MODES = %i[threaded ractor].freeze

  # What the examples of one mode's context can call besides `mode`.
  module Serving
    # Starts a server for +app+ (ServerHelper#start_server) in the mode.
    def serve(app, **options)
      start_server(app, mode: mode, **options)
    end
  end

  # Defines the block's examples once per mode, each time in a context
  # "in :<mode> mode" whose examples have `mode` and #serve. The block is
  # given the mode, for descriptions and setups that depend on it.
  def in_each_mode(&block)
    MODES.each do |mode|
      context "in :#{mode} mode" do
        include Serving

        let(:mode) { mode }
        class_exec(mode, &block)
      end
    end
  end
end

RSpec.configure do |config|
  config.extend EachMode
end
