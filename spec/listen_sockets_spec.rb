# frozen_string_literal: true

require "net/http"
require "socket"
require "kino/listen_sockets"

# Systemd socket activation (Kino::ListenSockets): `kino` serves the
# socket it is handed as descriptor 3, binding nothing of its own.
RSpec.describe Kino::ListenSockets do
  after { stop_kino_processes }

  # systemd sets LISTEN_PID to the pid of the process it execs; a shell
  # that execs kino has kino's pid as its own.
  let(:as_systemd) { ["sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "sh"] }

  def hand_over(socket, *args, env: {})
    spawn_kino(*args, "spec/fixtures/processes.ru", env: { "LISTEN_FDS" => "1" }.merge(env),
                                                    spawn_options: { 3 => socket }, wrapper: as_systemd)
  end

  [1, 2].each do |processes|
    it "serves the socket systemd hands it with processes #{processes}, binding nothing else" do
      socket = TCPServer.new("127.0.0.1", 0)
      port = socket.addr[1]
      kino = hand_over(socket, "-m", "threaded", "-C", "spec/fixtures/config/processes.rb",
                       env: { "KINO_SPEC_PROCESSES" => processes.to_s })
      socket.close # kino's copy is the one that serves
      expect(kino.stdout.scan(/^\* Listening on (.*)$/).flatten).to eq(["tcp://127.0.0.1:#{port}"])
      response = Net::HTTP.start("127.0.0.1", port, open_timeout: 5, read_timeout: 5) { |h| h.get("/") }
      expect(response.code).to eq("200")
      expect(response.body).to match(/\Apid \d+\n\z/)
      expect(response["x-listen-fds"]).to eq("unset") # taken out of the environment before the app loads
    end
  end

  it "ignores LISTEN_FDS meant for another process" do
    env = { "LISTEN_FDS" => "1", "LISTEN_PID" => "1" }
    expect(described_class.from_systemd(env)).to eq([])
    expect(env).to include("LISTEN_FDS")
  end
end
