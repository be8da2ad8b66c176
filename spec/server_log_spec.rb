# frozen_string_literal: true

require "kino"

RSpec.describe Kino::ServerLog do
  it "writes to the log of the server it names" do
    start_server(->(_env) { [200, {}, []] })
    described_class.write(server.server_id, "kino: a line from a worker\n")
    expect(wait_for_log(/a line from a worker/)).to include("kino: a line from a worker\n")
  end

  it "writes to a worker ractor's server log too" do
    start_server(->(_env) { [200, {}, []] })
    id = server.server_id
    ractor_value(Ractor.new(id) { |server_id| Kino::ServerLog.write(server_id, "kino: a line from a ractor\n") })
    expect(wait_for_log(/a line from a ractor/)).to include("kino: a line from a ractor\n")
  end

  it "writes to $stderr once the server is gone" do
    start_server(->(_env) { [200, {}, []] })
    id = server.server_id
    server.shutdown(1)
    described_class.write(id, "kino: said somewhere\n")
    expect(captured_stderr).to eq("kino: said somewhere\n")
    expect(server_log).not_to include("said somewhere")
  end
end
