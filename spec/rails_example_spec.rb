# frozen_string_literal: true

require "json"

# examples/rails-hello, a real Rails 7.2 app in production mode, served by
# Kino the two ways a Rails user starts it: `bundle exec kino` (reading the
# app's config/kino.rb and config.ru) and `bin/rails server -u kino`
# (Rackup::Handler::Kino).
RSpec.describe "examples/rails-hello" do
  include_context "in a fresh directory"

  before(:all) { RailsExample.check_bundle! }

  def start(command, *args, env: {})
    kino = spawn_kino(*args, command: command, chdir: RailsExample::DIR, env: RailsExample.env(env),
                             spawn_options: RailsExample.spawn_options, wait: false)
    kino.wait_for_stdout(/^\* Listening on .*\n/, timeout: RailsExample::BOOT_TIMEOUT)
    kino
  end

  def answers_both_actions(kino)
    port = kino.listening_port
    root = http_get("/", port: port)
    expect([root.code, root.body]).to eq(["200", "Hello from Rails #{rails_version} on Kino\n"])

    json = http_get("/hello.json?name=kino", port: port)
    expect(json.code).to eq("200")
    expect(json["content-type"]).to start_with("application/json")
    expect(JSON.parse(json.body)).to include("hello" => "kino", "rails" => rails_version,
                                             "server" => "kino #{Kino::VERSION}")
  end

  def stops_gracefully(kino)
    kino.signal("TERM")
    expect(kino.wait(timeout: 30)&.exitstatus).to eq(0)
    expect(kino.stdout).to include("- Gracefully stopping (SIGTERM)", "- Goodbye!")
  end

  # The pids /hello.json names, asked on fresh connections (each may reach
  # either process of a group) until every one of +pids+ has answered.
  def pids_answering(port, pids)
    seen = Set.new
    wait_until(timeout: 30, message: -> { "only #{seen.to_a} of #{pids} answered" }) do
      response = http_get("/hello.json", port: port)
      seen << JSON.parse(response.body).fetch("pid") if response.code == "200"
      (pids - seen.to_a).empty?
    end
    seen.to_a
  end

  # The Rails the example's Gemfile.lock pins.
  def rails_version
    File.read(File.join(RailsExample::DIR, "Gemfile.lock"))[/^    railties \(([\d.]+)\)$/, 1]
  end

  it "pins a Rails 7.2 in its Gemfile.lock" do
    expect(rails_version).to start_with("7.2.")
  end

  it "serves both actions with `bundle exec kino`, in threaded mode as config/kino.rb says" do
    kino = start(%w[bundle exec kino], "-p", "0")
    expect(kino.stdout).to include("* Mode: threaded, 1 workers x 3 threads")
    answers_both_actions(kino)
    stops_gracefully(kino)
  end

  it "serves both actions with `bin/rails server -u kino`, its -p winning over config/kino.rb" do
    pidfile = File.join(@dir, "server.pid") # not the app's tmp/pids: examples may run at once
    kino = start([RbConfig.ruby, "bin/rails", "server"], "-u", "kino", "-b", "127.0.0.1", "-p", "0", "-P", pidfile)
    expect(kino.stdout).to include("=> Booting Kino", "* Mode: threaded, 1 workers x 3 threads")
    expect(kino.listening_port).not_to eq(3000)
    answers_both_actions(kino)
    stops_gracefully(kino)
  end

  it "serves from two processes with WEB_CONCURRENCY=2, as a Puma cluster would; TERM stops the group" do
    kino = start(%w[bundle exec kino], "-p", "0", env: { "WEB_CONCURRENCY" => "2" })
    count, pids = kino.stdout.match(RailsExample::GROUP_LINE)&.captures
    expect(count).to eq("2"), "no group boot line in:\n#{kino.stdout}"
    children = pids.split(", ").map { |pid| Integer(pid) }
    expect(children.size).to eq(2)
    expect(children).not_to include(kino.pid)
    # Rails answered in each child: the action renders its own pid.
    expect(pids_answering(kino.listening_port, children)).to match_array(children)

    kino.signal("TERM")
    expect(kino.wait(timeout: 30)&.exitstatus).to eq(0)
    expect(kino.stdout).to include("- Gracefully stopping (SIGTERM), waiting for 2 processes to finish", "- Goodbye!")
    children.each { |pid| expect { Process.kill(0, pid) }.to raise_error(Errno::ESRCH) }
  end

  # The check loads every autoload of the app's namespaces and walks a
  # graph of thousands of objects in a forked child, which must come back.
  it "is diagnosed by `bundle exec kino --check`: blockers listed, exit status 1, nothing left running" do
    kino = spawn_kino("--check", command: %w[bundle exec kino], chdir: RailsExample::DIR, env: RailsExample.env,
                                 spawn_options: RailsExample.spawn_options, wait: false)
    expect(kino.wait(timeout: RailsExample::BOOT_TIMEOUT)&.exitstatus).to eq(1)
    report = kino.stdout + kino.stderr
    expect(report).to match(/^kino --check: config.ru cannot run in :ractor mode \(\d+ blockers/)
    expect(report).to include("RailsHello::Application")
    expect(report).not_to include("checking it failed")
    expect(kino.output_closed?).to be(true), "a forked check still holds kino's output"
  end

  it "logs through Kino::Logger, tagged with the request id" do
    kino = start(%w[bundle exec kino], "-p", "0")
    response = http_get("/", { "X-Request-Id" => "spec-request-1" }, port: kino.listening_port)
    expect(response.code).to eq("200")
    wait_until(message: -> { "no tagged log line\nstdout:\n#{kino.stdout}" }) do
      kino.stdout.include?("[spec-request-1] Completed 200 OK")
    end
  end
end
