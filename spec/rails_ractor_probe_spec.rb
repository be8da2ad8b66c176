# frozen_string_literal: true

# examples/rails-hello/ractor_probe.rb on the bundled Rails: it boots the
# app, meets the blockers doc/rails-on-ractors.md describes, reports each
# and finishes (exit 0) instead of crashing on the first.
RSpec.describe "examples/rails-hello/ractor_probe.rb" do
  before(:all) { RailsExample.check_bundle! }

  it "reports each blocker to sharing and calling the app, and does not crash" do
    out_r, out_w = IO.pipe
    pid = Process.spawn(RailsExample.env, "bundle", "exec", "ruby", "ractor_probe.rb",
                        chdir: RailsExample::DIR, out: out_w, err: %i[child out],
                        in: File::NULL, **RailsExample.spawn_options)
    out_w.close
    reader = Thread.new { out_r.read }
    status = wait_until(timeout: RailsExample::BOOT_TIMEOUT, message: "the probe did not finish") do
      Process.waitpid2(pid, Process::WNOHANG)&.last
    end
    output = reader.value

    expect(status.exitstatus).to eq(0), output
    expect(output).to match(/^ractor_probe: Rails 7\.2\.\d+, ruby /)
    expect(output).to match(/^  blocker 1: Ractor::\w+Error: /) # sharing the booted app
    expect(output).to match(/^  blocker 2: \d+ Thread::Mutex \(never shareable\), e\.g\. at app\./)
    expect(output).to match(/^  blocker 2: \d+ block\(s\) from \S+\.rb:\d+: Proc's self is not shareable; e\.g\. at /)
    expect(output).to include("  control: a plain ractor answers [200, \"a ractor answers\"]")
    expect(output).to match(/^  blocker 3: Rails\.application inside the ractor: Ractor::IsolationError: /)
    expect(output).to match(/^ractor_probe: \d+ blocker\(s\) found; the app cannot run in :ractor mode$/)
    expect(output).not_to include("the probe failed here")
  ensure
    out_r&.close
    if pid && !status
      Process.kill("KILL", pid)
      Process.wait(pid)
    end
  end
end
