# frozen_string_literal: true

require "kino"

# Ruby 3.3 and later run the Ruby code of at most RUBY_MAX_CPU non-main
# ractors at once (thread_pthread.c); a :ractor server with more workers
# than that says so once at boot, and what to set. Each example boots
# exe/kino with RUBY_MAX_CPU in its environment (Ruby reads it only at
# boot) and reads its stderr once it has exited, so the output is whole.
RSpec.describe "The RUBY_MAX_CPU warning in :ractor mode" do
  let(:port) { free_port }

  before do
    cap = Kino::AvailableParallelism.ruby_max_cpu(env: {})
    skip "Ruby #{RUBY_VERSION} has no RUBY_MAX_CPU cap: M:N threads came with Ruby 3.3" unless cap
  end

  def boot(mode, workers, ruby_max_cpu)
    spawn_kino("-m", mode, "-w", workers.to_s, "spec/fixtures/hello.ru",
               port: port, env: { "RUBY_MAX_CPU" => ruby_max_cpu.to_s })
  end

  it "is given once when workers exceed RUBY_MAX_CPU, and the workers still serve" do
    kino = boot("ractor", 2, 1)
    http(port) { |h| 4.times { expect(h.get("/").body).to eq("Hello from Kino\n") } }
    kino.stop
    warning = "#{said_by(pid: kino.pid)}warning: 2 workers, but this Ruby runs no more than 1 of them at once " \
              "(RUBY_MAX_CPU=1): set RUBY_MAX_CPU=2 in the environment kino starts in, or lower workers\n"
    expect(kino.stderr.scan(warning).size).to eq(1), kino.stderr
  end

  it "is not given while workers fit under RUBY_MAX_CPU, nor in :threaded mode" do
    [["ractor", 2, 2], ["threaded", 2, 1]].each do |mode, workers, ruby_max_cpu|
      kino = boot(mode, workers, ruby_max_cpu)
      http(port) { |h| expect(h.get("/").body).to eq("Hello from Kino\n") }
      kino.stop
      expect(kino.stderr).not_to include("RUBY_MAX_CPU"), "#{mode}, RUBY_MAX_CPU=#{ruby_max_cpu}:\n#{kino.stderr}"
    end
  end
end
