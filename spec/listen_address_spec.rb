# frozen_string_literal: true

require "kino/listen_address"

RSpec.describe Kino::ListenAddress do
  def parse(address)
    described_class.parse(address)
  end

  def parse_error(address)
    parse(address)
  rescue Kino::ConfigError => e
    e.message
  else
    raise "expected #{address.inspect} to raise Kino::ConfigError"
  end

  describe ".parse" do
    {
      "0.0.0.0" => [:tcp, "0.0.0.0", nil],
      "localhost:8080" => [:tcp, "localhost", 8080],
      "tcp://127.0.0.1" => [:tcp, "127.0.0.1", nil],
      "tcp://127.0.0.1:0" => [:tcp, "127.0.0.1", 0],
      "::1" => [:tcp, "::1", nil],
      "tcp://::" => [:tcp, "::", nil],
      "[::1]" => [:tcp, "::1", nil],
      "[::1]:8080" => [:tcp, "::1", 8080],
      "tcp://[fe80::1%eth0]:65535" => [:tcp, "fe80::1%eth0", 65_535]
    }.each do |address, (kind, host, port)|
      it "reads #{address.inspect} as #{kind} #{host} #{port.inspect}" do
        parsed = parse(address)
        expect([parsed.kind, parsed.host, parsed.port, parsed.path]).to eq([kind, host, port, nil])
        expect([parsed.tcp?, parsed.unix?]).to eq([true, false])
      end
    end

    it "reads unix://PATH as a socket path, relative or absolute" do
      expect([parse("unix://tmp/kino.sock").path, parse("unix:///run/kino.sock").path])
        .to eq(["tmp/kino.sock", "/run/kino.sock"])
      expect(parse("unix://k.sock")).to have_attributes(kind: :unix, host: nil, port: nil, unix?: true, tcp?: false)
    end

    it "is frozen, so the values it holds can be handed to ractors" do
      expect(parse("[::1]:80")).to be_frozen
      expect(Ractor.shareable?(parse("unix://k.sock"))).to be(true)
    end

    {
      8080 => "needs an address such as HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH (got 8080)",
      "" => 'needs an address such as HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH (got "")',
      "unix://" => 'needs a socket path after unix:// (got "unix://")',
      "ssl://0.0.0.0:443" => 'cannot listen on "ssl://0.0.0.0:443": Kino listens on tcp:// and unix:// ' \
                             "(HTTPS comes from the tls directive)",
      "http://localhost" => 'cannot listen on "http://localhost": Kino listens on tcp:// and unix:// ' \
                            "(HTTPS comes from the tls directive)",
      "tcp://0.0.0.0:99999" => 'cannot read "tcp://0.0.0.0:99999" as an address ' \
                               "(expected HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH)",
      "host:port" => 'cannot read "host:port" as an address (expected HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH)',
      "bad host" => 'cannot read "bad host" as an address (expected HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH)',
      "[::1]:80:81" => 'cannot read "[::1]:80:81" as an address ' \
                       "(expected HOST, HOST:PORT, tcp://HOST:PORT or unix://PATH)"
    }.each do |address, message|
      it "refuses #{address.inspect}, without a location (the directive adds it)" do
        expect(parse_error(address)).to eq(message)
      end
    end
  end

  describe "#resolve and #to_s" do
    def canonical(address, default_port: 9292, base_directory: "/srv/app")
      parse(address).resolve(default_port: default_port, base_directory: base_directory).to_s
    end

    it "gives a TCP address without a port the default port, and keeps one it names" do
      expect([canonical("0.0.0.0"), canonical("tcp://127.0.0.1:8080"), canonical("10.0.0.1:0", default_port: 1)])
        .to eq(["tcp://0.0.0.0:9292", "tcp://127.0.0.1:8080", "tcp://10.0.0.1:0"])
    end

    it "writes IPv6 hosts in brackets, however they were written" do
      expect([canonical("::1"), canonical("[::1]"), canonical("tcp://[::1]:7000")])
        .to eq(["tcp://[::1]:9292", "tcp://[::1]:9292", "tcp://[::1]:7000"])
    end

    it "makes a relative socket path absolute against the base directory, and keeps an absolute one" do
      expect([canonical("unix://tmp/kino.sock"), canonical("unix:///run/kino.sock")])
        .to eq(["unix:///srv/app/tmp/kino.sock", "unix:///run/kino.sock"])
    end

    it "reads back its own canonical form unchanged" do
      ["tcp://127.0.0.1:9292", "tcp://[::1]:0", "unix:///run/kino.sock"].each do |address|
        expect(parse(address).to_s).to eq(address)
      end
    end

    it "writes an address without a port as it was read" do
      expect([parse("::1").to_s, parse("localhost").to_s]).to eq(["tcp://[::1]", "tcp://localhost"])
    end
  end
end
