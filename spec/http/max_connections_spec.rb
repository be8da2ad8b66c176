# frozen_string_literal: true

require "kino"

# The app is a module, shareable, so the examples run in :threaded and
# :ractor mode alike.
module MaxConnectionsApps
  module Ok
    def self.call(_env)
      [200, { "content-type" => "text/plain" }, ["ok\n"]]
    end
  end
end

# max_connections: at the limit the server stops accepting; new clients
# wait in the kernel's backlog and are served once a connection closes.
# Every example runs in :threaded and in :ractor mode.
RSpec.describe "max_connections" do
  in_each_mode do
    let(:app) { MaxConnectionsApps::Ok }

    it "leaves a client beyond the limit in the backlog until a connection closes" do
      serve(app, max_connections: 2)
      first = connect
      second = connect
      wait_until(message: "the server never accepted the first two") { server.stats[:connections_open] == 2 }

      third = connect # the kernel completes the handshake; Kino does not accept it yet
      third.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      expect(third.wait_readable(0.7)).to be_nil
      expect(server.stats[:connections_accepted]).to eq(2)

      first.close
      expect(read_response(third).status).to eq(200)
      second.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      expect(read_response(second).status).to eq(200)
    end

    it "takes its default from the open-file limit" do
      soft, = Process.getrlimit(:NOFILE)
      skip "no open-file limit" if soft == Process::RLIM_INFINITY
      serve(app)
      expected = [soft - [soft / 10, 64].max, 16].max
      clients = Array.new(3) { connect }
      clients.each { |c| c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }
      expect(clients.map { |c| read_response(c).status }).to eq([200, 200, 200])
      expect(server.send(:native_options)[:max_connections]).to eq(expected)
    end
  end
end
