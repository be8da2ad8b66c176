# frozen_string_literal: true

module Bench
  # One server process for one measurement: started fresh on a free port,
  # waited for, stopped with SIGTERM and waited for again.
  class ServerRun
    attr_reader :pid, :port, :log_path, :boot_seconds, :stop_seconds, :exit_status, :problems, :verify_body

    def initialize(target, options, log_path)
      @target = target
      @options = options
      @log_path = log_path
      @problems = []
    end

    def command
      @target.command(@port)
    end

    # Starts the server and waits until `path` answers 200 with the right
    # body. Returns nil when ready, or the reason it is not.
    def start(path, body_check)
      @port = free_port
      workload = @options.workload
      env = MeasuredRuby.env(@target.gemfile).merge(workload.env).merge(@target.env)
      started = Bench.now
      @pid = Processes.spawn(env, *command, chdir: workload.dir, in: File::NULL, %i[out err] => [@log_path, "w"])
      deadline = started + @options.boot_timeout
      loop do
        if (status = Processes.reap(@pid) && $?)
          Processes.forget(@pid)
          @exit_status = status
          @pid = nil
          return "exited during boot (#{describe_status(status)}): #{log_tail(3)}"
        end
        return "did not answer on port #{@port} within #{@options.boot_timeout}s" if Bench.now > deadline

        if port_open?
          answer = verify(path, body_check)
          if answer == :ok
            @boot_seconds = Bench.now - started
            return nil
          end
          return answer unless answer == :retry
        end
        sleep 0.1
      end
    end

    # :ok, :retry (not listening yet) or a description of a wrong answer.
    def verify(path, body_check)
      tls = @options.tls&.http_options || {}
      response = Net::HTTP.start(HOST, @port, open_timeout: 2, read_timeout: 30, **tls) { |http| http.get(path) }
      @verify_body = response.body.to_s
      return :ok if response.code == "200" && body_check.call(@verify_body)

      "GET #{path} answered #{response.code} with #{@verify_body[0, 60].inspect}"
    rescue Errno::ECONNREFUSED, Errno::ECONNRESET, EOFError, Net::OpenTimeout, OpenSSL::SSL::SSLError
      :retry
    rescue Net::ReadTimeout
      "GET #{path} got no answer within 30s"
    end

    def alive?
      return false unless @pid

      if (status = Processes.reap(@pid) && $?)
        @exit_status = status
        Processes.forget(@pid)
        return false
      end
      true
    end

    # SIGTERM to the server's own process (Puma's master stops its workers
    # itself), then wait; escalate to SIGKILL on the whole group if it hangs.
    # Afterwards nothing of its process group may remain and the port must
    # be closed: a leftover server would take the next target's load.
    def stop
      pgid = @pid
      return unless pgid

      started = Bench.now
      if alive?
        begin
          Process.kill("TERM", @pid)
        rescue Errno::ESRCH
          nil
        end
        deadline = started + @options.stop_timeout
        until (status = Processes.reap(@pid) && $?)
          if Bench.now > deadline
            @problems << "shutdown hung: still running #{@options.stop_timeout}s after SIGTERM; sent SIGKILL"
            Processes.kill_group(pgid, "KILL")
            Process.waitpid(@pid)
            status = $?
            break
          end
          sleep 0.02
        end
        @exit_status = status
        @stop_seconds = Bench.now - started
        @problems << "unclean exit after SIGTERM: #{describe_status(status)}" unless
          @target.clean_exit?(status) || @problems.any?
      else
        @problems << "server had died before SIGTERM: #{describe_status(@exit_status)}"
      end
      ensure_group_gone(pgid)
      ensure_port_closed
    ensure
      Processes.forget(pgid) if pgid
      @pid = nil
    end

    def log_tail(lines)
      File.exist?(@log_path) ? File.readlines(@log_path).last(lines).map(&:strip).join(" | ") : ""
    end

    # Lines of the server's output that look like trouble.
    def suspicious_log_lines
      return [] unless File.exist?(@log_path)

      # Line by line: with the access log on the file holds a line a request.
      File.foreach(@log_path).lazy.map(&:rstrip)
          .grep(/error|exception|fail|fatal|abort|segmentation|killed|timeout|cut off|warn/i).to_a
    end

    private

    def free_port
      server = TCPServer.new(HOST, 0)
      server.addr[1]
    ensure
      server&.close
    end

    def port_open?
      Socket.tcp(HOST, @port, connect_timeout: 0.5).close
      true
    rescue SystemCallError, IOError, SocketError
      false
    end

    def ensure_group_gone(pgid)
      deadline = Bench.now + 3
      sleep 0.05 while Processes.group_alive?(pgid) && Bench.now < deadline
      return unless Processes.group_alive?(pgid)

      @problems << "processes of its group outlived it (#{ProcFs.group(pgid).join(', ')}); sent SIGKILL"
      Processes.kill_group(pgid, "KILL")
      sleep 0.05 while Processes.group_alive?(pgid) && Bench.now < deadline + 3
    end

    def ensure_port_closed
      deadline = Bench.now + 3
      sleep 0.05 while port_open? && Bench.now < deadline
      @problems << "port #{@port} still accepts connections after the server stopped" if port_open?
    end

    def describe_status(status)
      return "unknown" unless status
      return "exit #{status.exitstatus}" if status.exited?

      "killed by SIG#{Signal.signame(status.termsig)}"
    end
  end
end
