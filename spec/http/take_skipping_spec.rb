# frozen_string_literal: true

require "kino"

# The app is a module, shareable, so the examples run in :threaded and
# :ractor mode alike. It meets the spec through files (HttpApps::Gate).
module TakeSkippingApps
  # /hold?gate=PATH keeps the only worker busy until PATH exists;
  # /charge?log=PATH&id=ID appends ID to the file at PATH: what the app has
  # run is what that file says.
  module Ledger
    def self.call(env)
      params = Rack::Utils.parse_query(env["QUERY_STRING"])
      case env["PATH_INFO"]
      when "/hold" then HttpApps::Gate.wait(params["gate"])
      when "/charge" then File.open(params["log"], "a") { |f| f.write("#{params['id']}\n") }
      end
      [200, { "content-type" => "text/plain" }, ["done\n"]]
    end
  end
end

# A request the client has already been answered for (504 from
# request_timeout, 503 from queue_timeout), or whose client has gone, is
# never run by the app: a client told its POST failed may retry it, and it
# must not run twice. One worker thread, held busy at a gate, so the
# requests behind it wait in the queue.
RSpec.describe "Requests skipped at take time" do
  in_each_mode do
    let(:gate) { signal_path("gate") }
    let(:ledger) { signal_path("ledger") }

    def post_charge(id)
      connect_with("POST /charge?log=#{ledger}&id=#{id} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\npaid")
    end

    # The worker is busy with /hold once this returns.
    def hold_the_worker
      socket = connect_with("GET /hold?gate=#{gate} HTTP/1.1\r\nHost: x\r\n\r\n")
      wait_until(message: "the worker never took /hold") { requests_in_app == 1 }
      socket
    end

    # What the app ran, once a last charge has been answered: with one
    # worker thread, everything queued before it was taken (or skipped).
    def charges_run
      expect(read_response(post_charge("last")).status).to eq(200)
      File.read(ledger).split("\n")
    end

    it "never runs a request that got its 504 while it waited" do
      serve(TakeSkippingApps::Ledger, workers: 1, threads: 1, request_timeout: 1)
      hold_the_worker
      timed_out = post_charge("timed-out")
      expect(read_response(timed_out).status).to eq(504)
      open_gate(gate)
      expect(charges_run).to eq(["last"])
    end

    it "never runs a request whose client closed the connection while it waited" do
      serve(TakeSkippingApps::Ledger, workers: 1, threads: 1)
      hold_the_worker
      leaving = post_charge("gone")
      wait_until(message: "the charge was never queued") { server.stats[:queued] == 1 }
      leaving.close
      sleep 0.1 # the FIN reaches the server
      open_gate(gate)
      expect(charges_run).to eq(["last"])
      wait_until(message: "the skipped request still counts as in flight") { server.stats[:in_flight].zero? }
    end

    it "never runs a request that got its 503 waiting for a place in the queue" do
      serve(TakeSkippingApps::Ledger, workers: 1, threads: 1, queue_depth: 1, queue_timeout: 0.5)
      hold_the_worker
      queued = post_charge("queued")
      wait_until(message: "the first charge was never queued") { server.stats[:queued] == 1 }
      refused = read_response(post_charge("refused"))
      expect(refused.status).to eq(503)
      expect(refused["retry-after"]).to eq("1")
      open_gate(gate)
      expect(read_response(queued).status).to eq(200)
      expect(charges_run).to eq(%w[queued last])
    end
  end
end
