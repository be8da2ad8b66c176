# frozen_string_literal: true

require "kino"
require "socket"

# The kinds of address a server listens on: IPv4, IPv6 and Unix sockets,
# each answering real requests.
RSpec.describe "Listening" do
  include ServerHelper

  include_context "in a fresh directory"

  let(:app) do
    ->(env) { [200, { "content-type" => "text/plain" }, ["#{env['REMOTE_ADDR']} #{env['SERVER_PORT']}\n"]] }
  end

  def ask(socket)
    socket.write("GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
    read_response(socket)
  end

  it "serves IPv6 loopback and reports the peer as ::1" do
    begin
      Socket.tcp("::1", free_port, connect_timeout: 1).close
    rescue Errno::ECONNREFUSED
      nil # IPv6 loopback exists; nothing listens there, as expected
    rescue Errno::EADDRNOTAVAIL, Errno::ENETUNREACH, SocketError
      skip "no IPv6 loopback on this machine"
    end
    server = start_server(app, bind: "tcp://[::1]:0")
    expect(server.addresses.first).to match(%r{\Atcp://\[::1\]:\d+\z})
    port = Integer(server.addresses.first[/\d+\z/])
    socket = Socket.tcp("::1", port, connect_timeout: ServerHelper::IO_TIMEOUT)
    response = ask(socket)
    socket.close
    expect(response.status).to eq(200)
    expect(response.body).to eq("::1 80\n")
  end

  it "serves a Unix socket, and removes the socket file when it stops" do
    path = File.join(@dir, "kino.sock")
    server = start_server(app, bind: "unix://#{path}")
    expect(server.addresses).to eq(["unix://#{path}"])
    expect(File.socket?(path)).to be(true)
    socket = UNIXSocket.new(path)
    response = ask(socket)
    socket.close
    expect(response.status).to eq(200)
    expect(response.body).to eq("127.0.0.1 80\n")
    server.shutdown(1)
    expect(File.exist?(path)).to be(false)
  end

  it "listens on several addresses at once" do
    path = File.join(@dir, "both.sock")
    server = start_server(app, bind: ["tcp://127.0.0.1:0", "unix://#{path}"])
    expect(server.addresses.size).to eq(2)
    tcp = Socket.tcp("127.0.0.1", server.port, connect_timeout: ServerHelper::IO_TIMEOUT)
    unix = UNIXSocket.new(path)
    expect([ask(tcp).status, ask(unix).status]).to eq([200, 200])
    [tcp, unix].each(&:close)
  end

  it "refuses an address already in use, naming it" do
    taken = TCPServer.new("127.0.0.1", 0)
    port = taken.addr[1]
    expect { start_server(app, bind: "tcp://127.0.0.1:#{port}") }
      .to raise_error(Kino::Error, %r{cannot listen on tcp://127\.0\.0\.1:#{port}})
  ensure
    taken&.close
  end
end
