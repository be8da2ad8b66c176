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
    end
  end
end
