# frozen_string_literal: true

require "kino"

RSpec.describe Kino::ServerLog do
  it "labels a line with the process and the part of it that spoke" do
    expect(described_class.line("worker-3", "hello")).to eq("kino[#{Process.pid}] worker-3: hello\n")
    expect(described_class.line("main", "kino: said by main\n")).to eq("kino[#{Process.pid}] main: said by main\n")
    expect(described_class.speaker(3)).to eq("worker-3")
    expect(described_class.speaker(3, 2)).to eq("worker-3/thread-2")
  end

  it "writes to the log of the server it names" do
    start_server(->(_env) { [200, {}, []] })
    described_class.write(server.server_id, described_class.line("worker-0", "a line from a worker"))
    expect(wait_for_log(/a line from a worker/)).to include("#{said_by('worker-0')}a line from a worker\n")
  end

  it "writes to a worker ractor's server log too" do
    start_server(->(_env) { [200, {}, []] })
    id = server.server_id
    ractor_value(Ractor.new(id) do |server_id|
      Kino::ServerLog.write(server_id, Kino::ServerLog.line("worker-1", "a line from a ractor"))
    end)
    expect(wait_for_log(/a line from a ractor/)).to include("#{said_by('worker-1')}a line from a ractor\n")
  end

  it "says a line not labelled yet is main's" do
    start_server(->(_env) { [200, {}, []] })
    described_class.write(server.server_id, "kino: from the main process\n")
    expect(wait_for_log(/main process/)).to include("#{said_by}from the main process\n")
  end

  it "writes to $stderr once the server is gone" do
    start_server(->(_env) { [200, {}, []] })
    id = server.server_id
    server.shutdown(1)
    described_class.write(id, "kino: said somewhere\n")
    expect(captured_stderr).to eq("kino: said somewhere\n")
    expect(server_log).not_to include("said somewhere")
  end

  describe Kino::ServerLog::Output do
    it "labels main's lines on an IO without a descriptor, and writes labelled lines as they are" do
      io = StringIO.new
      output = described_class.new(io)
      expect(output.descriptor).to be_nil
      output.write("kino: booting\n")
      output.puts("kino[1] worker-2: a worker's")
      expect(io.string).to eq("#{said_by}booting\nkino[1] worker-2: a worker's\n")
    end

    it "goes through the native writer of a server on its descriptor, the label tinted on a terminal" do
      require "pty"
      require "io/console"
      PTY.open do |terminal, tty|
        tty.raw!
        output = described_class.new(tty)
        kino = Kino::Server.new(->(_env) { [200, {}, []] }, log: output, port: 0, bind: "127.0.0.1",
                                                            mode: :threaded).start
        output.write("kino: on the terminal\n")
        expected = "kino[#{Process.pid}] \e[36mmain\e[0m: on the terminal\n"
        got = +""
        wait_until(message: -> { got.inspect }) do
          got << terminal.read_nonblock(4096, exception: false).to_s
          got.include?(expected)
        end
      ensure
        kino&.shutdown(1)
      end
    end
  end
end
