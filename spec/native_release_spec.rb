# frozen_string_literal: true

require "kino"

# Kino::Native.server_release waits: for the I/O threads to be joined, and
# for a stop already under way in another thread (two shutdowns racing, a
# signal's and an embedder's) to finish its drain. That drain may be
# waiting for a request a worker thread of this very process is serving,
# so the wait must not hold the GVL: with it held, the worker could never
# finish, and the request would be cut off when the drain gives up.
RSpec.describe "Kino::Native.server_release" do
  let(:server_id) { Kino::Native.server_create(NativeOptions.with(worker_slots: 1)) }

  after { Kino::Native.server_release(server_id) }

  def port_of(id)
    Integer(Kino::Native.server_addresses(id).first[/:(\d+)\z/, 1])
  end

  def refused?(port)
    Socket.tcp("127.0.0.1", port, connect_timeout: 1).close
    false
  rescue Errno::ECONNREFUSED
    true
  rescue Errno::ECONNRESET
    # Met the listener as it closed: ask again until it refuses.
    false
  end

  it "lets a worker finish the request that a stop in another thread is draining" do
    id = server_id
    port = port_of(id)
    Kino::Native.server_start(id)
    entered = Queue.new
    # Kernel#sleep needs the GVL back to return: a release holding it
    # keeps this request from ever finishing.
    app = lambda do |_env|
      entered << true
      sleep 0.4
      [200, { "content-type" => "text/plain" }, ["done"]]
    end
    worker = Thread.new do
      Kino::RequestLoop.new(id, app, slot: 0).run
    rescue Kino::Error
      nil # its next take_one came after the release: the server is gone
    end
    socket = connect(port)
    socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    wait_until(message: "the app never got the request") { !entered.empty? }

    started = monotonic
    stopper = Thread.new { Kino::Native.server_stop(id, 3.0) }
    # The stop closes the listeners first, while it holds the server's
    # lifecycle lock: from then on a release waits for the drain.
    wait_until(message: "the stop never closed the listener") { refused?(port) }
    releaser = Thread.new { Kino::Native.server_release(id) }

    response = read_response(socket)
    expect([response.status, response.body]).to eq([200, "done"])
    expect(stopper.value).to eq(0) # nothing cut off
    expect(releaser.value).to be(true)
    expect(monotonic - started).to be < 2.0
    expect(worker.join(2)).to be(worker) # the server is gone: the worker ends
  ensure
    [stopper, releaser, worker].compact.each { |t| t.join(5) || t.kill }
  end
end
