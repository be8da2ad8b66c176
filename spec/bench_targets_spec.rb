# frozen_string_literal: true

require_relative "../bench/lib/bench"
require_relative "../bench/lib/bench/studies"

# bench/compare.rb's and bench/studies.rb's target names: what each one
# starts, and nginx and puma+ractors started for real by the harness.
RSpec.describe "bench targets" do
  let(:options) do
    Bench::Options.new(rounds: 1, duration: 1, warmup: 0, connections: 4, wrk_threads: 1,
                       endpoints: %w[plaintext cpu], targets: [], workers: 3, threads: nil, ratios: [],
                       yjit: false, output: nil, pause: 0, wait_idle: 0, boot_timeout: 30.0, stop_timeout: 20.0,
                       check_app: false, kino_root: Bench::ROOT, tls: nil)
  end

  def build(name)
    Bench::Target.build(name, options)
  end

  # The config file a Kino target's command names with -C.
  def kino_config(target)
    command = target.command(12_345)
    File.read(command[command.index("-C") + 1])
  end

  it "turns +lanes and +batchN into config lines, combined with +log" do
    target = build("kino-ractor+lanes+batch4+log")
    expect(kino_config(target).lines.map(&:strip))
      .to include("lanes true", "batch 4", "log_requests true", "log_format :text")
    expect(target.describe).to include("lanes", "batch 4")
  end

  it "passes +spinsN and +copy to the server as measuring variables, with no config file" do
    target = build("kino-ractor+spins0+copy")
    expect(target.env).to eq("KINO_QUEUE_SPINS" => "0", "KINO_LEND_MIN_BYTES" => (1 << 40).to_s)
    expect(target.command(12_345)).not_to include("-C")
    expect(target.describe).to include("KINO_QUEUE_SPINS=0")
  end

  it "writes no config file for a target without modifiers" do
    expect(build("kino-threaded").command(12_345)).not_to include("-C")
  end

  it "rejects unknown, repeated and contradictory modifiers" do
    %w[kino-ractor+fast kino-ractor+lanes+lanes kino-ractor+log+json kino-ractor+batch0
       kino-ractor+batch2+batch4 kino-ractor+spins+lanes].each do |name|
      expect { build(name) }.to raise_error(OptionParser::InvalidArgument, /#{Regexp.escape(name)}/)
    end
  end

  it "runs a target named @WxT with that shape, whatever --workers says" do
    kino = build("kino-threaded+log@2x5")
    expect(kino.topology).to eq("2 x 5")
    expect(kino.command(12_345).each_cons(2).to_a).to include(["-w", "2"], ["-t", "5"])
    puma = build("puma@2x12")
    expect(puma.command(12_345).each_cons(2).to_a).to include(["-w", "2"], ["-t", "12:12"])
    expect(build("puma").topology).to eq("3 x 3")
    expect { build("nginx@2x3") }.to raise_error(OptionParser::InvalidArgument, /T = 1/)
    expect { build("puma@0x3") }.to raise_error(OptionParser::InvalidArgument)
  end

  it "notes the endpoints nginx does not answer, and does not measure it there" do
    options.targets = %w[nginx kino-ractor]
    runner = nil
    expect { runner = Bench::Runner.new(options, logs_dir: Dir.mktmpdir) }.to output(/nginx does not answer/).to_stdout
    expect(runner.notes).to eq(["nginx does not answer /cpu: not measured there"])
  end

  it "names every study's targets and endpoints validly" do
    Bench::Studies::ALL.each_value do |study|
      studied = study.apply(options.dup)
      expect { studied.validate! }.not_to raise_error
    end
  end

  # Starts `name` with the harness, as a measurement would, and stops it.
  def serve(name, path, body)
    server = Bench::ServerRun.new(build(name), options, File.join(Dir.mktmpdir, "server.log"))
    expect(server.start(path, body)).to be_nil
    yield server
  ensure
    server&.stop
    expect(server.problems).to eq([])
  end

  it "serves /plaintext and /10k from nginx, with worker_processes = workers" do
    skip "nginx is not installed (bin/setup installs it)" unless Bench::NginxTarget.installed?

    serve("nginx@2x1", "/plaintext", ->(b) { b == "Hello, World!" }) do |server|
      response = Net::HTTP.get_response(Bench::HOST, "/10k", server.port)
      expect([response.code, response.body.bytesize]).to eq(["200", 10_000])
      expect(Net::HTTP.get_response(Bench::HOST, "/cpu", server.port).code).to eq("404")
      expect(Bench::ProcFs.tree(server.pid).size).to eq(3) # the master and two workers
    end
  end

  it "answers bench_app's /cpu on Puma through the ractor pool" do
    serve("puma+ractors@2x2", "/cpu", ->(b) { b == "6765" }) do |server|
      responses = Array.new(4) { Thread.new { Net::HTTP.get_response(Bench::HOST, "/plaintext", server.port) } }
      expect(responses.map { |t| t.value.body }).to eq(["Hello, World!"] * 4)
    end
  end
end
