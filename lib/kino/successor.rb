# frozen_string_literal: true

require "rbconfig"
require_relative "errors"

module Kino
  # A zero-downtime restart (SIGUSR2 to a process group's parent): the
  # running `kino` starts a new one, the successor, with the same command
  # line and the listening sockets inherited, so no port is ever closed.
  # The successor loads the new code, forks its children on the same
  # sockets, and once every child serves says so through a pipe; only then
  # does the old parent hand the pidfile over and drain its own children.
  # Meanwhile both generations accept on the same sockets, so a client
  # that connects at any moment is served by one of them. A successor that
  # exits before it is ready (a syntax error in the new code, a child that
  # cannot boot) changes nothing: the old processes go on serving, and the
  # log says how the successor ended.
  #
  # The hand-over goes through the environment: KINO_INHERIT_FDS lists
  # "fd address" pairs (";" between them), KINO_INHERIT_CONTROL the control
  # plane's, and KINO_READY_FD the pipe the successor writes "ready" to.
  # The successor removes all three before its app loads.
  class Successor
    INHERIT = "KINO_INHERIT_FDS"
    INHERIT_CONTROL = "KINO_INHERIT_CONTROL"
    READY_FD = "KINO_READY_FD"
    VARIABLES = [INHERIT, INHERIT_CONTROL, READY_FD].freeze

    attr_reader :pid

    # Starts `ruby +command+` in +directory+ with +sockets+ (ListenSockets)
    # inherited. Returns the Successor, which is polled from then on.
    def self.start(command, sockets, directory:)
      reader, writer = IO.pipe
      descriptors = sockets.pairs + [sockets.control].compact
      env = {
        INHERIT => sockets.pairs.map { |address, fd| "#{fd} #{address}" }.join(";"),
        INHERIT_CONTROL => sockets.control&.then { |address, fd| "#{fd} #{address}" },
        READY_FD => writer.fileno.to_s
      }
      keep = descriptors.to_h { |_address, fd| [fd, fd] }.merge(writer.fileno => writer)
      pid = Process.spawn(env, RbConfig.ruby, *command, chdir: directory, **keep)
      writer.close
      new(pid, reader)
    rescue SystemCallError => e
      reader&.close
      writer&.close
      raise Error, "cannot start the new kino: #{e.message}"
    end

    def initialize(pid, ready_pipe)
      @pid = pid
      @ready_pipe = ready_pipe
      @buffer = +""
    end

    # :ready once the successor serves, [:failed, why] once it has exited
    # without being ready, nil while it boots.
    def poll
      return :ready if ready_said?

      waited, status = Process.waitpid2(@pid, Process::WNOHANG)
      return nil unless waited

      @ready_pipe.close
      [:failed, describe(status)]
    rescue Errno::ECHILD
      [:failed, "is gone"]
    end

    # In the successor: the sockets its predecessor handed over ([[address,
    # fd], ...], the control pair or nil) and the pipe to say "ready" on, or
    # nil without a restart. Removes the variables from +env+.
    def self.handed_over(env = ENV)
      return nil unless env[READY_FD]

      pairs = env.fetch(INHERIT, "").split(";").map { |entry| parse_pair(entry) }
      control = env[INHERIT_CONTROL] && parse_pair(env[INHERIT_CONTROL])
      ready = IO.for_fd(Integer(env[READY_FD]), "w")
      VARIABLES.each { |name| env.delete(name) }
      { listeners: pairs, control: control, ready: ready }
    end

    def self.parse_pair(entry)
      fd, address = entry.split(" ", 2)
      [address.freeze, Integer(fd)].freeze
    end

    # In the successor, once every child serves.
    def self.say_ready(ready)
      ready.write("ready #{Process.pid}\n")
      ready.close
    rescue IOError, SystemCallError
      nil # the predecessor is gone: nothing to tell
    end

    private

    def describe(status)
      return "was killed by SIG#{Signal.signame(status.termsig)}" if status.signaled?

      "exited with status #{status.exitstatus}"
    end

    def ready_said?
      @buffer << @ready_pipe.read_nonblock(64)
      @buffer.include?("ready")
    rescue IO::WaitReadable, IOError # EOFError too
      @buffer.include?("ready")
    end
  end
end
