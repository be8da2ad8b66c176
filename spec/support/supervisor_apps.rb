# frozen_string_literal: true

# Apps for the supervisor and quarantine examples, shareable so they run
# in both modes. Requests are held at a gate file (HttpApps::Gate) rather
# than for a fixed time: a held request can only end because the server
# ended it, or because the spec opened its gate.
module SupervisorApps
  # How long a held request's client waits: longer than the app waits at
  # its gate (HttpApps::Gate::TIMEOUT), so a forgotten gate fails the
  # example from the app's side first.
  HELD_TIMEOUT = 20

  # /crash raises an Exception that is not a StandardError, which ends the
  # worker; /hold waits at the X-Gate file; anything else answers at once.
  module Crashy
    def self.call(env)
      case env["PATH_INFO"]
      when "/crash" then raise Exception, "worker down on purpose" # rubocop:disable Lint/RaiseException
      when "/hold" then HttpApps::Gate.wait(env["HTTP_X_GATE"])
      end
      [200, { "content-type" => "text/plain" }, ["#{env['PATH_INFO']}\n"]]
    end
  end
end

# What the supervisor and quarantine examples do as a client, and how
# they hear of a worker's end.
module SupervisorHelpers
  # Sends GET +path+ (held at +gate+) on a connection of its own; returns
  # a thread whose value is [status, body] once the response is in.
  def request_in_background(path, gate)
    socket = connect
    wire_buffer(socket) # created here, not concurrently in the threads
    socket.write("GET #{path} HTTP/1.1\r\nHost: x\r\nX-Gate: #{gate}\r\nConnection: close\r\n\r\n")
    Thread.new do
      response = read_response(socket, timeout: SupervisorApps::HELD_TIMEOUT)
      [response.status.to_s, response.body]
    end
  end

  # The [index, error] pairs on_worker_exit was called with so far.
  def drain(queue)
    Array.new(queue.size) { queue.pop }
  end
end

RSpec.shared_context "supervised workers" do
  include SupervisorHelpers

  let(:exits) { Queue.new }
  # on_worker_exit runs on the main ractor (in the supervisor's thread),
  # in both modes, so it may close over a Queue.
  let(:on_worker_exit) { ->(index, error) { exits << [index, error] } }
end
