# frozen_string_literal: true

require "kino"
require "net/http"
require "open3"
require "socket"

# Apps for both modes: modules, shareable.
module TlsApps
  # What the app saw of the scheme, and the body it was sent.
  module Echo
    def self.call(env)
      body = env["rack.input"].read
      [200, { "content-type" => "text/plain" },
       ["#{env['rack.url_scheme']} HTTPS=#{env['HTTPS'].inspect} port=#{env['SERVER_PORT']} body=#{body.bytesize}"]]
    end
  end
end

# `tls cert:, key:`: every bind serves HTTPS (OpenSSL, TLS 1.2 and 1.3,
# ALPN http/1.1), with a handshake deadline, SIGHUP reloading the
# certificate, and a boot that stops on a certificate or key it cannot
# use. Certificates are self-signed, made for each example.
RSpec.describe "TLS" do
  include_context "in a fresh directory"

  let(:certificate) { tls_certificate }
  let(:files) { write_tls_files(File.join(@dir, "tls"), certificate) }

  def run_tool(*command)
    out, status = Open3.capture2e(*command, stdin_data: "")
    [out, status]
  end

  in_each_mode do
    it "serves HTTPS that Net::HTTP verifies, and tells the app the scheme" do
      serve(TlsApps::Echo, tls: files)
      response = https_client(server.port, certificate).start { |http| http.get("/") }
      expect(response.code).to eq("200")
      expect(response.body).to eq("https HTTPS=\"on\" port=#{server.port} body=0")
    end

    it "takes the certificate and key as inline PEM too" do
      serve(TlsApps::Echo, tls: { cert: certificate.cert, key: certificate.key })
      expect(https_client(server.port, certificate).start { |http| http.get("/").code }).to eq("200")
    end

    it "keeps a connection alive over TLS and reads POST bodies whole" do
      serve(TlsApps::Echo, tls: files)
      bodies = https_client(server.port, certificate).start do |http|
        [http.post("/", "x" * 300_000).body, http.get("/").body, http.post("/", "y" * 10).body]
      end
      expect(bodies).to eq(["https HTTPS=\"on\" port=#{server.port} body=300000",
                            "https HTTPS=\"on\" port=#{server.port} body=0",
                            "https HTTPS=\"on\" port=#{server.port} body=10"])
      expect(server.stats[:connections_accepted]).to eq(1)
    end

    it "serves curl, which verifies the certificate (--cacert)" do
      serve(TlsApps::Echo, tls: files)
      out, status = run_tool("curl", "-sS", "--max-time", "5", "--cacert", trusted_file(certificate),
                             "--resolve", "localhost:#{server.port}:127.0.0.1", "-w", " %{http_version}", # rubocop:disable Style/FormatStringToken
                             "https://localhost:#{server.port}/")
      expect(status).to be_success, out
      expect(out).to eq("https HTTPS=\"on\" port=#{server.port} body=0 1.1")
    end

    it "negotiates TLS 1.3 and 1.2 with ALPN http/1.1, and refuses TLS 1.1 (openssl s_client)" do
      serve(TlsApps::Echo, tls: files)
      base = ["openssl", "s_client", "-connect", "127.0.0.1:#{server.port}", "-servername", "localhost",
              "-CAfile", trusted_file(certificate), "-verify_return_error", "-alpn", "h2,http/1.1"]
      out, status = run_tool(*base)
      expect(status).to be_success, out
      expect(out).to include("New, TLSv1.3, Cipher is ", "ALPN protocol: http/1.1", "Verify return code: 0 (ok)")

      out, status = run_tool(*base, "-tls1_2")
      expect(status).to be_success, out
      expect(out).to include("New, TLSv1.2, Cipher is ECDHE-", "ALPN protocol: http/1.1")

      # SECLEVEL=0 so this client offers TLS 1.1 at all; the server refuses it.
      out, status = run_tool(*base, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
      expect(status).not_to be_success
      expect(out).to match(/protocol version|unsupported protocol/)
    end

    it "closes a handshake that stalls (nothing sent, or half a ClientHello) at its deadline" do
      stub_const("Kino::Server::TLS_HANDSHAKE_TIMEOUT", 0.5)
      serve(TlsApps::Echo, tls: files)
      silent = connect
      partial = connect_with("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".b)
      started = monotonic
      [silent, partial].each do |socket|
        expect(socket.wait_readable(5)).to be_truthy
        expect(socket.read_nonblock(1024, exception: false)).to be_nil.or eq("")
      end
      expect(monotonic - started).to be < 3
      expect(https_client(server.port, certificate).start { |http| http.get("/").code }).to eq("200")
    end

    it "closes plaintext HTTP sent to the TLS port, answers nothing in the clear, and serves on" do
      serve(TlsApps::Echo, tls: files)
      socket = connect_with("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
      expect(socket.wait_readable(5)).to be_truthy
      received = +""
      loop do
        chunk = socket.read_nonblock(1024, exception: false)
        break if chunk.nil?

        chunk == :wait_readable ? socket.wait_readable(5) : received << chunk
      rescue Errno::ECONNRESET
        break
      end
      expect(received).not_to start_with("HTTP/")
      expect(https_client(server.port, certificate).start { |http| http.get("/").code }).to eq("200")
    end

    it "requires a client certificate signed by the ca: when given" do
      client = tls_certificate("client")
      serve(TlsApps::Echo, tls: files.merge(ca: write("tls/ca.pem", client.cert)))
      without = https_client(server.port, certificate)
      expect { without.start { |http| http.get("/") } }.to raise_error(StandardError) { |error|
        expect([OpenSSL::SSL::SSLError, EOFError, Errno::ECONNRESET]).to include(error.class)
      }
      with = https_client(server.port, certificate)
      with.cert = client.x509
      with.key = OpenSSL::PKey.read(client.key)
      expect(with.start { |http| http.get("/").code }).to eq("200")
    end
  end

  describe "a certificate or key that cannot be used" do
    def boot_error(tls)
      server = Kino::Server.new(TlsApps::Echo, log: StringIO.new, mode: :threaded, tls: tls)
      expect { server.start }.to raise_error(Kino::ConfigError) { |error| return error.message }
    ensure
      expect(server.running?).to be(false)
    end

    it "names a missing file" do
      missing = File.join(@dir, "nope.pem")
      expect(boot_error(cert: missing, key: files[:key]))
        .to eq("tls cert #{missing}: cannot read it: No such file or directory")
    end

    it "names a file that is not PEM, with OpenSSL's reason" do
      expect(boot_error(cert: write("tls/readme.txt", "hello\n"), key: files[:key]))
        .to match(%r{\Atls cert #{Regexp.escape(@dir)}/tls/readme\.txt: not a usable PEM certificate: .*no start line})
    end

    it "names a key that does not match the certificate" do
      other = write("tls/other.pem", tls_certificate("other").key)
      expect(boot_error(cert: files[:cert], key: other))
        .to match(/\Atls key #{Regexp.escape(other)}: does not match tls cert #{Regexp.escape(files[:cert])}: /)
        .and end_with("key values mismatch")
    end

    it "stops `kino` with exit status 1 and the file named" do
      config = write("kino.rb", "tls cert: #{File.join(@dir, 'gone.pem').inspect}, key: #{files[:key].inspect}\n")
      kino = spawn_kino("-C", config, "spec/fixtures/hello.ru", port: free_port, wait: false)
      expect(kino.wait(timeout: ServerHelper::BOOT_TIMEOUT)&.exitstatus).to eq(1)
      expect(kino.stderr)
        .to eq("#{said_by(pid: kino.pid)}tls cert #{File.join(@dir, 'gone.pem')}: cannot read it: " \
               "No such file or directory\n")
      expect(kino.stdout).not_to include("Listening")
    end
  end

  describe "SIGHUP" do
    %w[threaded ractor].each do |mode|
      it "reloads the certificate for new connections, and keeps it when the new files are bad (#{mode} mode)" do
        write_tls_files(File.join(@dir, "tls"), tls_certificate("first"))
        tls = File.join(@dir, "tls")
        config = write("kino.rb",
                       "tls cert: #{File.join(tls, 'cert.pem').inspect}, key: #{File.join(tls, 'key.pem').inspect}\n")
        port = free_port
        kino = spawn_kino("-C", config, "-m", mode, "-w", "1", "-t", "1", "spec/fixtures/hello.ru", port: port)
        expect(kino.stdout).to include("* Listening on https://127.0.0.1:#{port}\n")
        expect(presented_common_name(port)).to eq("first")

        write_tls_files(File.join(@dir, "tls"), tls_certificate("second"))
        kino.signal("HUP")
        wait_until(message: -> { "no reload line\nstderr:\n#{kino.stderr}" }) { kino.stderr.include?("reloaded") }
        expect(presented_common_name(port)).to eq("second")

        File.write(File.join(tls, "key.pem"), "not a key\n")
        kino.signal("HUP")
        wait_until(message: -> { "no failure line\nstderr:\n#{kino.stderr}" }) { kino.stderr.include?("failed") }
        expect(kino.stderr).to include("#{said_by(pid: kino.pid)}tls: reload failed, still serving the previous " \
                                       "certificate: " \
                                       "tls key #{tls}/key.pem: not a usable PEM private key")
        expect(presented_common_name(port)).to eq("second")
      end
    end
  end
end
