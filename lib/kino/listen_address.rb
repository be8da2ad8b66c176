# frozen_string_literal: true

require "kino/errors"

module Kino
  # One address to listen on, read from the way a +bind+ (or
  # +control_bind+) writes it and written back in the canonical form the
  # native listener takes: "tcp://HOST:PORT" (an IPv6 host in brackets) or
  # "unix://PATH".
  #
  #   address = Kino::ListenAddress.parse("[::1]")
  #   address.host                                            # => "::1"
  #   address.resolve(default_port: 9292, base_directory: Dir.pwd).to_s
  #                                                           # => "tcp://[::1]:9292"
  #
  # A bare IPv6 address ("::1", "tcp://::1") cannot carry a port, since its
  # last group would read as one: write "[::1]:8080" for that.
  #
  # The native listener checks the canonical string again when it binds;
  # this is where a config file's address is read, so its errors can name
  # the file and line.
  class ListenAddress
    FORMS = "HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH"

    # :tcp or :unix.
    attr_reader :kind
    # The host of a TCP address, without brackets; nil for a unix socket.
    attr_reader :host
    # The port of a TCP address, or nil when it names none.
    attr_reader :port
    # The socket path of a unix address, as written; nil for TCP.
    attr_reader :path

    # Reads +address+, one of FORMS. Raises Kino::ConfigError (without a
    # location: the caller knows which directive and line it came from)
    # when it is none of them.
    def self.parse(address)
      unless address.is_a?(String) && !address.empty?
        raise ConfigError, "needs an address such as #{FORMS} (got #{address.inspect})"
      end
      return parse_unix(address) if address.start_with?("unix://")

      scheme = address[%r{\A([A-Za-z][A-Za-z0-9+.-]*)://}, 1]
      if scheme && scheme != "tcp"
        raise ConfigError, "cannot listen on #{address.inspect}: Kino listens on tcp:// and unix:// " \
                           "(HTTPS comes from the tls directive)"
      end

      host, port = split_host_and_port(address.delete_prefix("tcp://"))
      unless host && valid_host?(host) && (port.nil? || port_number(port))
        raise ConfigError, "cannot read #{address.inspect} as an address (expected #{FORMS})"
      end

      new(:tcp, host: host, port: port && port_number(port))
    end

    def self.parse_unix(address)
      path = address.delete_prefix("unix://")
      raise ConfigError, "needs a socket path after unix:// (got #{address.inspect})" if path.empty?

      new(:unix, path: path)
    end
    private_class_method :parse_unix

    def self.split_host_and_port(text)
      if (bracketed = text.match(/\A\[(?<host>[^\]]+)\](?::(?<port>[^:]*))?\z/))
        [bracketed[:host], bracketed[:port]]
      elsif text.count(":") > 1
        [text, nil]
      else
        host, separator, port = text.partition(":")
        [host, separator.empty? ? nil : port]
      end
    end
    private_class_method :split_host_and_port

    def self.valid_host?(host)
      if host.include?(":")
        host.match?(/\A[0-9A-Fa-f:.]+(%[\w.-]+)?\z/)
      else
        host.match?(/\A[A-Za-z0-9_.-]+\z/)
      end
    end
    private_class_method :valid_host?

    def self.port_number(text)
      number = Integer(text, 10, exception: false) if text.match?(/\A\d+\z/)
      number if number&.between?(0, 65_535)
    end
    private_class_method :port_number

    def initialize(kind, host: nil, port: nil, path: nil)
      @kind = kind
      @host = host&.dup&.freeze
      @port = port
      @path = path&.dup&.freeze
      freeze
    end

    def tcp?
      kind == :tcp
    end

    def unix?
      kind == :unix
    end

    # The address ready to listen on: a TCP address without a port gets
    # +default_port+, a relative socket path is made absolute against
    # +base_directory+.
    def resolve(default_port:, base_directory:)
      if unix?
        self.class.new(:unix, path: File.absolute_path(path, base_directory))
      else
        self.class.new(:tcp, host: host, port: port || default_port)
      end
    end

    # The canonical form: "tcp://HOST:PORT" ("tcp://HOST" without a port),
    # an IPv6 host in brackets, or "unix://PATH".
    def to_s
      return "unix://#{path}" if unix?

      bracketed = host.include?(":") ? "[#{host}]" : host
      port ? "tcp://#{bracketed}:#{port}" : "tcp://#{bracketed}"
    end
  end
end
