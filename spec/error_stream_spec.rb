# frozen_string_literal: true

require "kino"

# An app that writes to rack.errors every way Rack's SPEC allows.
module ErrorStreamApps
  module Writes
    def self.call(env)
      errors = env["rack.errors"]
      errors.puts("put #{env['PATH_INFO']}")
      errors.write("written\n")
      errors.print("printed", "\n")
      errors.puts
      errors.flush
      [200, { "content-type" => "text/plain" }, [Ractor.shareable?(errors).to_s]]
    end
  end
end

RSpec.describe Kino::ErrorStream do
  include ServerHelper
  include ClientHelper

  after { stop_servers }

  in_each_mode do
    it "is rack.errors: shareable, one a worker, its lines in the server's log said by that worker" do
      # Rack::Lint would hide print, which Rack's SPEC does not ask for.
      serve(ErrorStreamApps::Writes, workers: 1, threads: 1, lint: false)
      expect(http_get("/errors").body).to eq("true")
      said = said_by("worker-0")
      log = wait_for_log(/printed/)
      expect(log.lines).to eq(["#{said}put /errors\n", "#{said}written\n", "#{said}printed\n", "#{said}\n"])
    end
  end

  it "is the worker's, shared by its threads" do
    start_server(ErrorStreamApps::Writes, workers: 1, threads: 2, lint: false)
    http_get("/")
    expect(wait_for_log(/printed/)).to match(%r{^kino\[#{Process.pid}\] worker-0: put /$})
  end
end
