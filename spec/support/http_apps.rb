# frozen_string_literal: true

require "json"

# What apps in several spec files share. Examples run in :threaded and
# :ractor mode, so every app must be shareable: a module with `self.call`
# (modules are shareable), reading only frozen constants, keeping no state
# between requests. Bodies and streams are created per request, inside the
# worker.
#
# An app in a worker ractor cannot share a Queue with the spec, so where an
# example must hold an app at a point (a gate) or learn that the server did
# something to a body (a close), app and spec meet through files: the spec
# names a path in a request header, the app waits for it (Gate.wait) or
# creates it (Gate.open). Both sides put deadlines on the wait.
module HttpApps
  # Fresh headers for each response: Rack 3 asks for an unfrozen Hash.
  def self.text
    { "content-type" => "text/plain" }
  end

  module Gate
    # Longer than ServerHelper::IO_TIMEOUT: a server that held back a chunk
    # until the body ended would fail the example on the client's deadline
    # before this one lets the body go on.
    TIMEOUT = 10

    def self.wait(path)
      raise ArgumentError, "no gate path given" if path.nil? || path.empty?

      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + TIMEOUT
      until File.exist?(path)
        raise "gate #{path} was never opened" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        Kino.sleep(0.01)
      end
    end

    def self.open(path)
      File.write(path, "") if path && !path.empty?
    end
  end

  # The String-valued part of the env as JSON, with the body read from
  # rack.input as "rack.input". Every value is made valid UTF-8, so that
  # what a parser lets through can be echoed.
  module Echo
    def self.call(env)
      strings = env.select { |_k, v| v.is_a?(String) }
      strings["rack.url_scheme"] = env["rack.url_scheme"]
      strings["rack.input"] = env["rack.input"].read
      strings.transform_values! { |v| v.dup.force_encoding(Encoding::UTF_8).scrub }
      body = JSON.generate(strings)
      [200, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
    end
  end
end
