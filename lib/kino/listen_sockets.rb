# frozen_string_literal: true

require "socket"
require_relative "errors"
require_relative "native"

module Kino
  # The listening sockets of a process group, or of one process under
  # systemd's socket activation: opened once (by the parent that forks the
  # servers, or by systemd) and served by whoever is handed them, as
  # [[address, fd], ...] pairs (Kino::Server's `listeners:`).
  #
  # Under socket activation (LISTEN_FDS, with LISTEN_PID this process)
  # systemd passes descriptors 3 to 3 + LISTEN_FDS - 1 already bound and
  # listening; they are served as they are. A configured bind that names
  # one of them is not bound again; with no bind configured only the
  # handed sockets are served (the default bind would claim a port the
  # unit never asked for). The variables are removed from the environment
  # at once, so neither the app nor a process it starts takes the sockets
  # for its own (sd_listen_fds(3) unsets them too).
  class ListenSockets
    SYSTEMD_FIRST_FD = 3
    SYSTEMD_VARIABLES = %w[LISTEN_FDS LISTEN_PID LISTEN_FDNAMES].freeze
    CONTROL_BACKLOG = 64 # as the control listener binds its own

    attr_reader :pairs
    # The control plane's socket ([address, fd]), bound once for every
    # child (control_bind), or nil.
    attr_reader :control

    # The sockets systemd handed this process, as pairs; empty without
    # socket activation. Removes the variables from +env+ either way, when
    # they were meant for this process.
    def self.from_systemd(env = ENV, pid: Process.pid)
      count = Integer(env["LISTEN_FDS"] || "", exception: false)
      return [] unless count&.positive? && Integer(env["LISTEN_PID"] || "", exception: false) == pid

      SYSTEMD_VARIABLES.each { |name| env.delete(name) }
      Array.new(count) do |i|
        fd = SYSTEMD_FIRST_FD + i
        # Forked children inherit it anyway; a program the app runs must not.
        IO.for_fd(fd, autoclose: false).close_on_exec = true
        [address_of(fd), fd]
      end
    end

    # "tcp://HOST:PORT" or "unix:///path" for a listening descriptor, as
    # Kino writes an address (IPv6 hosts in brackets).
    def self.address_of(descriptor)
      socket = Socket.for_fd(descriptor)
      socket.autoclose = false # the descriptor is the group's, not this object's
      local = socket.local_address
      if local.unix?
        "unix://#{local.unix_path}"
      else
        host = local.ipv6? ? "[#{local.ip_address}]" : local.ip_address
        "tcp://#{host}:#{local.ip_port}"
      end
    rescue SystemCallError, ArgumentError => e
      raise ConfigError, "LISTEN_FDS: descriptor #{descriptor} is not a listening socket: #{e.message}"
    end

    # The sockets +configuration+ listens on: systemd's (+activated+
    # pairs), then every configured bind not among them, each bound once
    # here (Native.listen_socket: a stale unix socket is replaced, port 0
    # made real).
    #
    # +handed_over+ (Successor.handed_over) is what the `kino` this one
    # replaces listened on: exactly its binds and control socket, now this
    # process's to close and remove, and nothing else is bound (changing
    # the binds takes a full restart).
    def self.open(configuration, activated: [], handed_over: nil)
      return adopt(handed_over) if handed_over

      sockets = new(activated)
      wanted = activated.empty? || configuration.set?(:bind) ? configuration.listen_addresses : []
      wanted.each { |address| sockets.bind(address, configuration[:backlog]) }
      raise ConfigError, "nothing to listen on" if sockets.pairs.empty?

      sockets.bind_control(configuration.control_address) if configuration.control_address

      sockets
    rescue StandardError
      sockets&.close
      raise
    end

    def self.adopt(handed_over)
      new(handed_over[:listeners], owned: true, control: handed_over[:control])
    end

    # +owned+: the +activated+ pairs (and +control+) are this process's to
    # close and remove, as if it had bound them.
    def initialize(activated = [], owned: false, control: nil)
      @pairs = activated.map { |address, fd| [address.dup.freeze, fd].freeze }
      @control = control
      @bound = owned ? [*@pairs, control].compact : [] # what this process owns, to close and remove
    end

    def addresses
      @pairs.map(&:first)
    end

    def bind(address, backlog)
      return if addresses.include?(address)

      bound_as, fd = Native.listen_socket(address, backlog)
      pair = [bound_as.freeze, fd].freeze
      @pairs << pair
      @bound << pair
    rescue Kino::Error, RuntimeError => e
      raise ConfigError, e.message
    end

    def bind_control(address)
      bound_as, fd = Native.listen_socket(address, CONTROL_BACKLOG)
      @control = [bound_as.freeze, fd].freeze
      @bound << @control
    rescue Kino::Error, RuntimeError => e
      raise ConfigError, "control_bind: #{e.message}"
    end

    # After a restart's hand-over the successor owns the sockets: closing
    # them here must not remove a unix socket file it serves on.
    def disown!
      @bound.each do |pair|
        IO.for_fd(pair.last).close
      rescue SystemCallError, IOError
        nil
      end
      @bound.clear
    end

    # Closes the descriptors this process bound and removes their unix
    # socket files (systemd's are systemd's).
    def close
      @bound.each do |address, fd|
        IO.for_fd(fd).close
        File.unlink(address.delete_prefix("unix://")) if address.start_with?("unix://")
      rescue SystemCallError, IOError
        nil
      end
      @bound.clear
    end
  end
end
