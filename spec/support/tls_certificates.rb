# frozen_string_literal: true

require "openssl"
require "fileutils"
require "tmpdir"

# Self-signed certificates made at test time (Ruby's OpenSSL), for servers
# that serve TLS: #tls_certificate makes one for localhost and 127.0.0.1,
# #write_tls_files puts one in files, and #https_client is a Net::HTTP that
# trusts that one certificate alone.
module TlsCertificates
  # A certificate and its key, as PEM text.
  Certificate = Struct.new(:cert, :key, :common_name, keyword_init: true) do
    def x509
      OpenSSL::X509::Certificate.new(cert)
    end
  end

  def tls_certificate(common_name = "localhost")
    key = OpenSSL::PKey::EC.generate("prime256v1")
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = OpenSSL::BN.rand(64)
    name = OpenSSL::X509::Name.new([["CN", common_name]])
    cert.subject = name
    cert.issuer = name
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    extensions = OpenSSL::X509::ExtensionFactory.new(cert, cert)
    cert.add_extension(extensions.create_extension("subjectAltName", "DNS:localhost,IP:127.0.0.1"))
    cert.add_extension(extensions.create_extension("basicConstraints", "CA:TRUE", true))
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    Certificate.new(cert: cert.to_pem, key: key.private_to_pem, common_name: common_name)
  end

  # Writes +certificate+ to cert.pem and key.pem in +dir+; returns their paths.
  def write_tls_files(dir, certificate)
    FileUtils.mkdir_p(dir)
    cert = File.join(dir, "cert.pem")
    key = File.join(dir, "key.pem")
    File.write(cert, certificate.cert)
    File.write(key, certificate.key)
    { cert: cert, key: key }
  end

  # The trusted certificate as a file, for curl --cacert and s_client -CAfile.
  def trusted_file(certificate)
    path = File.join(Dir.tmpdir, "kino-spec-ca-#{Process.pid}-#{certificate.x509.serial}.pem")
    File.write(path, certificate.cert)
    path
  end

  # A Net::HTTP to 127.0.0.1:+port+ over TLS that verifies the server
  # against +certificate+ alone, for the name localhost.
  def https_client(port, certificate)
    http = Net::HTTP.new("localhost", port)
    http.ipaddr = "127.0.0.1"
    http.use_ssl = true
    http.verify_mode = OpenSSL::SSL::VERIFY_PEER
    store = OpenSSL::X509::Store.new
    store.add_cert(certificate.x509)
    http.cert_store = store
    http.open_timeout = 5
    http.read_timeout = 5
    http
  end

  # The certificate a TLS server on +port+ presents (its CN).
  def presented_common_name(port)
    tcp = TCPSocket.new("127.0.0.1", port)
    ssl = OpenSSL::SSL::SSLSocket.new(tcp, OpenSSL::SSL::SSLContext.new)
    ssl.hostname = "localhost"
    ssl.connect
    ssl.peer_cert.subject.to_a.find { |entry| entry[0] == "CN" }[1]
  ensure
    ssl&.close
    tcp&.close
  end
end

RSpec.configure do |config|
  config.include TlsCertificates
end
