# frozen_string_literal: true

module Bench
  # The load generator: wrk's command line, a run in its own process group,
  # and what its output says.
  module Wrk
    UNITS_MS = { "us" => 0.001, "ms" => 1.0, "s" => 1000.0, "m" => 60_000.0, "h" => 3_600_000.0 }.freeze

    # `wrk --version` exits 1 even when it is there.
    def self.installed?
      system("wrk --version > /dev/null 2>&1") || $?.exitstatus == 1
    end

    def self.command(options, url, duration:, latency:)
      ["wrk", "-t#{options.wrk_threads}", "-c#{options.connections}", "-d#{duration}s",
       *(latency ? ["--latency"] : []), url]
    end

    # Runs wrk in its own process group; returns [output, status]. Killed if
    # it overruns its window by a wide margin.
    def self.run(cmd, duration)
      output_file = Tempfile.create("kino-bench-wrk")
      pid = Processes.spawn(*cmd, out: output_file.path, err: %i[child out])
      deadline = Bench.now + duration + 30
      until (status = Processes.reap(pid) && $?)
        if Bench.now > deadline
          Processes.kill_group(pid, "KILL")
          Process.waitpid(pid)
          status = $?
          break
        end
        sleep 0.05
      end
      Processes.forget(pid)
      [File.read(output_file.path), status]
    ensure
      if output_file
        output_file.close
        FileUtils.rm_f(output_file.path)
      end
    end

    def self.to_ms(text)
      m = text&.match(/\A([\d.]+)(us|ms|s|m|h)\z/)
      m && (m[1].to_f * UNITS_MS.fetch(m[2]))
    end

    def self.parse(output)
      result = {
        rps: output[%r{^Requests/sec:\s+([\d.]+)}, 1]&.to_f,
        requests: output[/^\s*(\d+) requests in/, 1]&.to_i,
        p50_ms: to_ms(output[/^\s+50%\s+(\S+)/, 1]),
        p99_ms: to_ms(output[/^\s+99%\s+(\S+)/, 1]),
        socket_errors: { connect: 0, read: 0, write: 0, timeout: 0 },
        non_2xx: output[/Non-2xx or 3xx responses:\s+(\d+)/, 1].to_i
      }
      if (m = output.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/))
        result[:socket_errors] = { connect: m[1].to_i, read: m[2].to_i, write: m[3].to_i, timeout: m[4].to_i }
      end
      result
    end

    # Socket errors plus non-2xx/3xx answers in a parsed result.
    def self.errors?(result)
      result[:socket_errors].values.sum.positive? || result[:non_2xx].positive?
    end
  end
end
