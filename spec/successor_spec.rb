# frozen_string_literal: true

require "net/http"
require "fileutils"
require "kino/successor"

# SIGUSR2 to a process group's parent (Kino::Successor): a new `kino`
# boots the new code on the inherited sockets, then the old one drains.
RSpec.describe Kino::Successor do
  let(:dir) { Dir.mktmpdir("kino-usr2") }
  let(:pidfile) { File.join(dir, "kino.pid") }
  let(:socket_path) { File.join(dir, "kino.sock") }

  after do
    stop_kino_processes
    successor = File.exist?(pidfile) ? Integer(File.read(pidfile)) : nil
    if successor
      begin
        Process.kill("TERM", successor)
        wait_until(timeout: 20) do
          Process.kill(0, successor)
          false
        rescue Errno::ESRCH
          true
        end
      rescue Errno::ESRCH
        nil
      end
    end
    FileUtils.rm_rf(dir)
  end

  def write_app(version)
    File.write(File.join(dir, "config.ru"), <<~RUBY)
      run ->(env) { [200, { "content-type" => "text/plain" }, ["#{version} \#{Process.pid}\\n"]] }
    RUBY
  end

  def start_group(extra = "")
    File.write(File.join(dir, "kino.rb"), <<~RUBY)
      processes 2
      workers 1
      threads 4
      io_threads 1
      mode :threaded
      bind "tcp://127.0.0.1:0"
      bind "unix://#{socket_path}"
      pidfile #{pidfile.inspect}
      #{extra}
    RUBY
    spawn_kino("-C", File.join(dir, "kino.rb"), File.join(dir, "config.ru"), chdir: dir)
  end

  def port_of(kino)
    Integer(kino.stdout[%r{^\* Listening on tcp://127\.0\.0\.1:(\d+)$}, 1])
  end

  def get(port)
    response = Net::HTTP.start("127.0.0.1", port, open_timeout: 5, read_timeout: 10) { |h| h.get("/") }
    [response.code, response.body]
  end

  it "restarts on SIGUSR2 under load with no failed request; the new code answers and holds the pidfile" do
    write_app("v1")
    kino = start_group
    port = port_of(kino)
    expect(get(port).last).to start_with("v1 ")

    results = Queue.new
    stop = false
    clients = Array.new(3) do
      Thread.new do
        until stop
          begin
            results << get(port)
          rescue StandardError => e
            results << [:failed, "#{e.class}: #{e.message}"]
          end
        end
      end
    end
    write_app("v2")
    kino.signal("USR2")
    wait_until(timeout: 30, message: -> { "the new code never answered\nstderr:\n#{kino.stderr}" }) do
      get(port).last.start_with?("v2 ")
    end
    expect(kino.wait(timeout: 30)&.exitstatus).to eq(0) # the old parent drained and left
    10.times { expect(get(port).last).to start_with("v2 ") }
    stop = true
    clients.each(&:join)
    all = Array.new(results.size) { results.pop }
    expect(all.reject { |result| result.first == "200" }).to eq([])
    expect(all.size).to be > 10
    successor = Integer(File.read(pidfile))
    expect(successor).not_to eq(kino.pid)
    # The old parent left the unix socket to the new one.
    over_unix = UNIXSocket.new(socket_path)
    over_unix.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    expect(over_unix.read).to start_with("HTTP/1.1 200").and include("v2 ")
    over_unix.close
    expect(kino.stdout).to include("Gracefully stopping (restarted as pid #{successor})")
  end

  it "keeps serving when the new code does not boot, and says why" do
    write_app("v1")
    kino = start_group
    port = port_of(kino)
    File.write(File.join(dir, "config.ru"), "run(\n") # a syntax error
    kino.signal("USR2")
    wait_until(timeout: 30, message: -> { "no line about the failed restart\nstderr:\n#{kino.stderr}" }) do
      kino.stderr.match?(/SIGUSR2: the new kino \(pid \d+\) exited with status 1 before it was ready; still serving/)
    end
    expect(get(port).last).to start_with("v1 ")
    expect(Integer(File.read(pidfile))).to eq(kino.pid)
    expect(kino.exited?).to be(false)
  end
end
