# frozen_string_literal: true

require "openssl"

module Bench
  # The certificate and key a TLS session (compare.rb --tls) gives every
  # server: one self-signed certificate for 127.0.0.1, made for the session,
  # so Kino and Puma serve the very same one. #url_scheme and #http_options
  # are what a client of either needs.
  class TlsFiles
    attr_reader :cert, :key

    def self.create(dir)
      FileUtils.mkdir_p(dir)
      key = OpenSSL::PKey::EC.generate("prime256v1")
      cert = OpenSSL::X509::Certificate.new
      cert.version = 2
      cert.serial = OpenSSL::BN.rand(64)
      cert.subject = cert.issuer = OpenSSL::X509::Name.new([["CN", HOST]])
      cert.public_key = key
      cert.not_before = Time.now - 60
      cert.not_after = Time.now + 86_400
      extensions = OpenSSL::X509::ExtensionFactory.new(cert, cert)
      cert.add_extension(extensions.create_extension("subjectAltName", "IP:#{HOST}"))
      cert.sign(key, OpenSSL::Digest.new("SHA256"))
      File.write(File.join(dir, "cert.pem"), cert.to_pem)
      File.write(File.join(dir, "key.pem"), key.private_to_pem)
      new(File.join(dir, "cert.pem"), File.join(dir, "key.pem"))
    end

    def initialize(cert, key)
      @cert = cert
      @key = key
    end

    # The kino.rb line that turns TLS on (binds come from the command line).
    def kino_directive
      "tls cert: #{@cert.inspect}, key: #{@key.inspect}\n"
    end

    # Puma's bind for the same certificate.
    def puma_bind(port)
      "ssl://#{HOST}:#{port}?cert=#{@cert}&key=#{@key}&verify_mode=none"
    end

    # Net::HTTP.start options that trust this certificate alone.
    def http_options
      { use_ssl: true, verify_mode: OpenSSL::SSL::VERIFY_PEER, ca_file: @cert }
    end
  end
end
