# frozen_string_literal: true

require "kino"

# The objects every ractor reaches: env keys, repeating env values from
# the bounded value cache, Kino::Input::EMPTY. They are made shareable
# when created, and created on the main ractor only, so that a worker
# ractor (which may die and be replaced) never owns what the others use;
# Ruby 4.1 collects each ractor's objects on their own.
module SharedValueApps
  module Report
    # Run without Rack::Lint, whose wrapper would hide rack.input.
    def self.call(env)
      ServerHelper.lint_env(env)
      keys = env.keys.reject { |k| k == "kino.request" }
      report = {
        "keys_shareable" => keys.all? { |k| Ractor.shareable?(k) },
        "server_name" => env["SERVER_NAME"],
        "server_name_frozen" => env["SERVER_NAME"].frozen?,
        "server_name_shareable" => Ractor.shareable?(env["SERVER_NAME"]),
        "server_port_shareable" => Ractor.shareable?(env["SERVER_PORT"]),
        "remote_addr_shareable" => Ractor.shareable?(env["REMOTE_ADDR"]),
        "method_shareable" => Ractor.shareable?(env["REQUEST_METHOD"]),
        "empty_input" => env["rack.input"].equal?(Kino::Input::EMPTY),
        "empty_input_shareable" => Ractor.shareable?(env["rack.input"])
      }
      [200, { "content-type" => "application/json" }, [JSON.generate(report)]]
    end
  end
end

RSpec.describe "Objects shared by every ractor" do
  it "Kino::Input::EMPTY is frozen and shareable" do
    expect(Kino::Input::EMPTY).to be_frozen
    expect(Ractor.shareable?(Kino::Input::EMPTY)).to be(true)
  end

  %i[threaded ractor].each do |mode|
    context "in :#{mode} mode" do
      include_context "served in a mode", mode

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

      it "shares a host it has seen, created #{mode == :ractor ? 'by the main ractor, not the worker' : 'at once'}" do
        serve(SharedValueApps::Report, lint: false)
        host = "shared-#{mode}.example:8123"
        first = report(host)
        expect(first["server_name"]).to eq("shared-#{mode}.example")
        # A worker ractor allocates its own String for a value the cache
        # does not have yet; only the main ractor creates the shared one.
        expect(first["server_name_frozen"]).to be(mode == :threaded)
        later = wait_until(message: "the host was never shared") do
          seen = report(host)
          seen if seen["server_name_shareable"] && seen["server_port_shareable"]
        end
        expect(later["server_name_frozen"]).to be(true)
      end
    end
  end
end
