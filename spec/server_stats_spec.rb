# frozen_string_literal: true

require "kino"

# Kino::Server#stats: read natively, the same snapshot the control plane
# serves (spec/control_plane_spec.rb) and the USR1 line logs
# (spec/signals_spec.rb).
RSpec.describe "Kino::Server#stats" do
  include_context "supervised workers"

  def slot_rows
    server.stats[:slots]
  end

  in_each_mode do |mode|
    it "shows the pool, the counters, one row a worker thread and the queue wait (#{mode})" do
      serve(SupervisorApps::Crashy, workers: 2, threads: 2)
      wait_until(message: -> { "never ready: #{server.stats}" }) { server.stats[:state] == :ready }
      6.times { |i| expect(http_get("/r#{i}").body).to eq("/r#{i}\n") }
      # Counted once the last byte is handed to the socket, which may be
      # just after the client has read it.
      wait_until(message: -> { "never counted: #{server.stats}" }) { server.stats[:served] == 6 }

      stats = server.stats
      expect(stats).to include(mode: mode, workers: 2, threads: 2, workers_up: 2, respawns: 0, quarantined: 0,
                               queued: 0, served: 6, rejected: 0, timeouts: 0, log_dropped: 0)
      expect(stats[:slots].map { |row| row.values_at(:slot, :worker) }).to eq([[0, 0], [1, 0], [2, 1], [3, 1]])
      expect(stats[:slots].sum { |row| row[:served] }).to eq(6)
      expect(stats[:slots]).to all(include(in_flight: false, busy_ms: 0))

      wait = stats[:queue_wait]
      expect(wait[:count]).to eq(6)
      expect(wait[:sum]).to be >= 0
      bounds = wait[:buckets].keys
      expect(bounds.first).to eq(0.0005)
      expect(bounds.last).to eq(Float::INFINITY)
      expect(wait[:buckets].values).to eq(wait[:buckets].values.sort) # cumulative
      expect(wait[:buckets][Float::INFINITY]).to eq(6)
    end

    it "shows a stuck worker's row with its request's age climbing (#{mode})" do
      gate = signal_path("gate")
      serve(SupervisorApps::Crashy, workers: 1, threads: 1)
      held = request_in_background("/hold", gate)
      begin
        row = wait_until(message: -> { "the request never reached the slot: #{server.stats}" }) do
          slot_rows.first.then { |r| r if r[:in_flight] }
        end
        sleep 0.3
        later = slot_rows.first
        expect(later[:in_flight]).to be(true)
        expect(later[:busy_ms]).to be >= row[:busy_ms] + 250
        expect(server.stats).to include(in_flight: 1, queued: 0)
      ensure
        open_gate(gate)
      end
      expect(held.join(SupervisorApps::HELD_TIMEOUT)&.value).to eq(["200", "/hold\n"])
      wait_until(message: -> { "the slot never counted its answer: #{server.stats}" }) do
        slot_rows.first == { slot: 0, worker: 0, served: 1, in_flight: false, busy_ms: 0 }
      end
    end

    it "counts a crashed worker's respawn, pushed by the supervisor (#{mode})" do
      serve(SupervisorApps::Crashy, workers: 1, threads: 1, on_worker_exit: on_worker_exit)
      wait_until(message: -> { "never ready: #{server.stats}" }) { server.stats[:workers_up] == 1 }
      expect(http_get("/crash").code).to eq("500")
      wait_until(message: -> { "no respawn in stats: #{server.stats}\n#{server_log}" }) do
        server.stats.values_at(:respawns, :workers_up) == [1, 1]
      end
      expect(http_get("/after").body).to eq("/after\n")
    end
  end
end
