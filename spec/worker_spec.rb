# frozen_string_literal: true

require "kino"

# The Rack response contract as Kino::Worker carries it out, seen on the
# wire: the same examples (spec/support/http_examples.rb) in both modes,
# plus what only :threaded mode can run.
RSpec.describe Kino::Worker do
  %i[threaded ractor].each do |mode|
    context "in :#{mode} mode" do
      it_behaves_like "the Rack response contract", mode
    end
  end

  # :threaded mode runs any app, closures over Queues and locals included;
  # these examples hold the app with a Queue it closes over, which no
  # worker ractor could share.
  context "in :threaded mode only (apps closing over a Queue)" do
    it "sends an each body chunked, each chunk as the app produces it" do
      gate = Queue.new
      body = Object.new
      body.define_singleton_method(:each) do |&block|
        block.call("first\n")
        gate.pop
        block.call("last\n")
      end
      start_server(mode: :threaded) { |_env| [200, { "content-type" => "text/plain" }, body] }
      socket = connect
      begin
        socket.write("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = read_head(socket)
        expect(response.chunked?).to be(true)
        expect(read_chunk(socket)).to eq("first\n")
      ensure
        gate << :go
      end
      read_body(socket, response)
      expect(response.body).to eq("last\n")
      expect(response.complete?).to be(true)
    end

    it "calls body.close on the very body object the app returned" do
      closed = Queue.new
      body = ["x"]
      body.define_singleton_method(:close) { closed << :closed }
      start_server(mode: :threaded, lint: false) do |env|
        lint_env(env)
        [200, { "content-type" => "text/plain" }, body]
      end
      expect(http_get("/").body).to eq("x")
      wait_until(message: "body.close was never called") { closed.size == 1 }
    end
  end
end
