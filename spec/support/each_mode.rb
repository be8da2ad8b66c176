# frozen_string_literal: true

require "json"

# Most HTTP behaviour holds in both modes, so its examples run twice: with
# the app on threads of the main ractor (:threaded) and in worker ractors
# (:ractor). Extended into every example group.
module EachMode
  MODES = %i[threaded ractor].freeze

  # Defines the block's examples once per mode, each time in a context
  # "in :<mode> mode" that includes "served in a mode" below. The block is
  # given the mode, for descriptions and setups that depend on it.
  def in_each_mode(&block)
    MODES.each do |mode|
      context "in :#{mode} mode" do
        include_context "served in a mode", mode
        class_exec(mode, &block)
      end
    end
  end
end

# `mode` is the mode of the including group, and #serve starts a server
# in it.
RSpec.shared_context "served in a mode" do |mode|
  let(:mode) { mode }

  def serve(app, **options)
    start_server(app, mode: mode, **options)
  end

  def env_of(response)
    JSON.parse(response.body)
  end

  # Sends a request whose head the example writes itself, on a fresh
  # connection that the server is asked to close after answering; returns
  # the socket.
  def raw_get(path, headers = {}, method: "GET")
    extra = headers.map { |name, value| "#{name}: #{value}\r\n" }.join
    connect_with("#{method} #{path} HTTP/1.1\r\nHost: x\r\n#{extra}Connection: close\r\n\r\n")
  end
end

RSpec.configure do |config|
  config.extend EachMode
end
