# frozen_string_literal: true

require "kino"

RSpec.describe Kino::Quarantine do
  include_context "supervised workers"

  %i[threaded ractor].each do |mode|
    context "in :#{mode} mode" do
      it "sets a stuck worker aside without killing it, starts a replacement, and stops at quarantine_max" do
        first_gate = signal_path("first")
        second_gate = signal_path("second")
        start_server(SupervisorApps::Crashy, mode: mode, workers: 2, threads: 1,
                                             quarantine_timeout: 0.3, quarantine_max: 1,
                                             on_worker_exit: on_worker_exit)
        begin
          first = request_in_background("/hold", first_gate)
          log = wait_for_log(/set aside/)
          said = Regexp.escape(said_by)
          expect(log).to match(
            /^#{said}worker [01] set aside: a request has run \d+ ms \(quarantine_timeout 0\.3s\); started worker 2$/
          )
          expect(server.stats).to include(quarantined: 1, respawns: 0)
          # The stuck request goes on; others are served meanwhile.
          5.times { |i| expect(http_get("/during/#{i}").body).to eq("/during/#{i}\n") }
          expect(first).to be_alive

          second = request_in_background("/hold", second_gate)
          log = wait_for_log(/quarantine_max/)
          stuck = /is stuck \(\d+ ms\) but quarantine_max \(1\) is reached; no more replacements will be started/
          expect(log).to match(/^kino\[#{Process.pid}\] main: worker [0-2] #{stuck}$/)
          expect(log.scan("set aside").size).to eq(1)
          expect(server.stats).to include(quarantined: 1)
          expect(http_get("/still").body).to eq("/still\n")
        ensure
          open_gate(first_gate)
          open_gate(second_gate)
        end
        # Set aside, never killed: both stuck requests finish normally.
        expect(first.join(SupervisorApps::HELD_TIMEOUT)&.value).to eq(["200", "/hold\n"])
        expect(second.join(SupervisorApps::HELD_TIMEOUT)&.value).to eq(["200", "/hold\n"])
        expect(drain(exits)).to eq([])
        expect(server.stats).to include(respawns: 0)
      end

      it "gives the requests a stuck worker took in its batch back, for its replacement" do
        first_gate = signal_path("first")
        second_gate = signal_path("second")
        start_server(SupervisorApps::Crashy, mode: mode, workers: 1, threads: 1, batch: 4,
                                             quarantine_timeout: 3, quarantine_max: 1)
        begin
          first = request_in_background("/hold", first_gate)
          wait_until(message: -> { "the first request never reached the app: #{server.stats}" }) do
            requests_in_app == 1
          end
          # Queued behind it, then taken in one visit once it is answered:
          # the worker sticks on the first of them and holds the other two.
          stuck = request_in_background("/hold", second_gate)
          wait_until(message: -> { "/hold was never queued: #{server.stats}" }) { server.stats[:queued] == 1 }
          others = %w[/b /c].each_with_index.map do |path, i|
            client = request_in_background(path, nil)
            wait_until(message: -> { "#{path} was never queued: #{server.stats}" }) { server.stats[:queued] == i + 2 }
            client
          end
          open_gate(first_gate)
          expect(first.value).to eq(["200", "/hold\n"])
          wait_until(message: -> { "the batch never left the queue: #{server.stats}" }) { server.stats[:queued].zero? }

          # Set aside after 3 s, the worker's held /b and /c go back to the
          # queue and its replacement answers them; the stuck one goes on.
          expect(others.map { |c| c.join(6)&.value })
            .to eq([["200", "/b\n"], ["200", "/c\n"]])
          expect(server_log).to include("worker 0 set aside")
          expect(stuck).to be_alive
        ensure
          open_gate(first_gate)
          open_gate(second_gate)
        end
        expect(stuck.join(SupervisorApps::HELD_TIMEOUT)&.value).to eq(["200", "/hold\n"])
      end
    end
  end
end
