# frozen_string_literal: true

require "kino"
require_relative "fixtures/shared_values_app"

# The objects every ractor reaches: env keys, repeating env values from
# the bounded value cache, Kino::Input::EMPTY. They are made shareable
# when created, and created on the main ractor only, so that a worker
# ractor (which may die and be replaced) never owns what the others use;
# Ruby 4.1 collects each ractor's objects on their own.

RSpec.describe "Objects shared by every ractor" do
  it "Kino::Input::EMPTY is frozen and shareable" do
    expect(Kino::Input::EMPTY).to be_frozen
    expect(Ractor.shareable?(Kino::Input::EMPTY)).to be(true)
  end

  in_each_mode do |mode|
    def report(host)
      env_of(http_get("/", { "Host" => host }))
    end

    it "gives the app shareable env keys, method, peer and empty input" do
      serve(SharedValueApps::Report, lint: false)
      seen = report("localhost:80")
      expect(seen).to include("keys_shareable" => true, "method_shareable" => true,
                              "remote_addr_shareable" => true, "server_name_shareable" => true,
                              "server_port_shareable" => true, "empty_input" => true,
                              "empty_input_shareable" => true)
    end

    # In a process of its own: the value cache is bounded and shared by
    # the whole process, which other examples may have filled.
    it "shares a host it has seen, created #{mode == :ractor ? 'by the main ractor, not the worker' : 'at once'}" do
      port = free_port
      spawn_kino("-m", mode.to_s, "-w", "1", "-t", "1", "spec/fixtures/shared_values.ru", port: port)
      host = "shared-#{mode}.example:8123"
      report = ->(h) { env_of(http_get("/", { "Host" => h }, port: port)) }
      first = report.call(host)
      expect(first["server_name"]).to eq("shared-#{mode}.example")
      # A worker ractor allocates its own String for a value the cache
      # does not have yet; only the main ractor creates the shared one.
      expect(first["server_name_frozen"]).to be(mode == :threaded)
      later = wait_until(message: "the host was never shared") do
        seen = report.call(host)
        seen if seen["server_name_shareable"] && seen["server_port_shareable"]
      end
      expect(later["server_name_frozen"]).to be(true)
    end
  end
end
